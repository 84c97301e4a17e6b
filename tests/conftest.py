"""Shared fixtures: an isolated dwp-hub home, and tiny priors built in a temp registry.

Tiny priors are trained for a couple of epochs on synthetic kernels; they exercise every code
path quickly and are never published anywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from dwp_hub.card import ArchConfig
from dwp_hub.training.fit import FitRecipe, fit_vae
from dwp_hub.training.harvest import KernelDataset
from dwp_hub.training.publish import make_card, publish, source_info, write_version_folder

from helpers import REPO, TINY, build_tiny_prior, synthetic_kernels  # noqa: E402,F401 - shared helpers

@pytest.fixture(scope="session")
def _tiny_registry_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    reg = root / "registry"
    for name, (arch, versions) in TINY.items():
        for i, version in enumerate(versions):
            fitted = build_tiny_prior(root / f"fit-{name}-{version}", name, arch, seed=i)
            publish(fitted, name, version, reg)
    return reg


@pytest.fixture()
def tiny_registry(_tiny_registry_master: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the tiny registry, put first on ``DWP_HUB_REGISTRY`` (safe to tamper with)."""
    reg = tmp_path / "registry"
    shutil.copytree(_tiny_registry_master, reg)
    monkeypatch.setenv("DWP_HUB_REGISTRY", str(reg))
    return reg


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty DWP_HUB_HOME and no extra registries unless it asks."""
    monkeypatch.setenv("DWP_HUB_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("DWP_HUB_REGISTRY", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture()
def data_root() -> Path:
    """The real data root from DWP_HUB_DATA; skips when it is absent."""
    raw = os.environ.get("DWP_HUB_DATA")
    if not raw or not Path(raw).is_dir():
        pytest.skip("DWP_HUB_DATA is not set to the real data folder (CI sets it to ../shared/data).")
    return Path(raw)


@pytest.fixture()
def one_thread() -> object:
    """One torch thread for tests of thousands of tiny ops (extra threads only add synchronisation)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
