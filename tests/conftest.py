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

REPO = Path(__file__).resolve().parents[1]
TINY = {  # name -> (arch, versions)
    "tiny-7x7": (ArchConfig("conv7", 7, 2, 8), ("1.0.0", "1.1.0")),
    "tiny-5x5": (ArchConfig("conv5", 5, 4, 8), ("1.0.0",)),
    "tiny-3x3": (ArchConfig("mlp", 3, 4, 16), ("1.0.0",)),
}


def synthetic_kernels(k: int, n: int = 240, n_held: int = 40, seed: int = 0) -> KernelDataset:
    """Smooth random kernels (Gaussian blobs plus noise) with harvest-style metadata."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(-1, 1, k)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    def draw(m: int) -> torch.Tensor:
        cx, cy = torch.rand(m, 1, 1, generator=g) * 2 - 1, torch.rand(m, 1, 1, generator=g) * 2 - 1
        amp = torch.randn(m, 1, 1, generator=g) * 0.3
        blob = amp * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 3)
        return (blob + 0.02 * torch.randn(m, k, k, generator=g)).unsqueeze(1)
    meta = {
        "layer_pattern": "0.weight", "layers": ["0.weight"], "kernel_size": k,
        "prune": {"rule": "none", "value": 0.0, "threshold": 0.0, "description": "keep all kernels"},
        "kernels_total": n + n_held, "kernels_kept": n + n_held, "n_train": n, "n_held_out": n_held,
        "held_out_nets": [3], "sources": [{"file": f"net{i}.safetensors", "sha256": "0" * 64} for i in range(4)],
        "source": {"dataset": "synthetic", "dataset_sha256": "", "network": "synthetic", "protocol": "tests"},
    }
    return KernelDataset(draw(n), draw(n_held), meta)


def build_tiny_prior(folder: Path, name: str, arch: ArchConfig, seed: int = 0, epochs: int = 2) -> Path:
    """Fit a tiny prior and write an unpublished version folder."""
    data = synthetic_kernels(arch.kernel_size, seed=seed)
    recipe = FitRecipe(epochs=epochs, seed=seed, iw_k=16, iw_max_kernels=16)
    result = fit_vae(data, arch, recipe, progress=False)
    card = make_card(result, data, arch, recipe, name=name, version="0.0.0",
                     description=f"Tiny test prior {name}.", source=source_info(data))
    return write_version_folder(folder, result.vae, card, data.held_out)


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
