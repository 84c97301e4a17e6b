"""Every Python snippet in README.md and docs/*.md runs (snippets of one file share a namespace, in order)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

if TYPE_CHECKING:
    from hub_server import HubTestServer

pytest_plugins = ["hub_server"]

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def snippets(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text("utf-8"))


_PY_FENCE = re.compile(r"^\s*(```|~~~)\s*\{?\s*(py|python|python3|pycon|ipython)\b", re.M | re.I)


def test_there_are_snippets_to_run() -> None:
    assert len(snippets(ROOT / "README.md")) == 3 and len(snippets(ROOT / "docs" / "hub.md")) == 1


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_python_fence_is_a_snippet_that_runs(path: Path) -> None:
    """A ```py, ```python3, indented or ~~~ fence would not run here: every Python fence is a plain ```python one."""
    assert len(_PY_FENCE.findall(path.read_text("utf-8"))) == len(snippets(path))


def _check_readme(ns: dict[str, object]) -> None:
    prior, kernels, result = ns["prior"], ns["kernels"], ns["result"]
    assert prior.card.name == "notmnist-7x7" and tuple(kernels.shape) == (64, 1, 7, 7)
    assert torch.isfinite(kernels).all() and 0.0 <= result.metrics["acc_ensemble"] <= 1.0
    assert [r for r in str(ns["report"]).splitlines() if "notmnist-7x7" in r]  # the init report names the prior
    assert torch.isfinite(ns["loss"])


def _check_hub(ns: dict[str, object]) -> None:
    prior, pinned = ns["prior"], ns["pinned"]
    assert prior.card.spec == "notmnist-7x7@1.0.0" and len(prior.commit) == 40
    assert pinned.commit == prior.commit and pinned.card.weights_sha256 == prior.card.weights_sha256


_CHECKS = {"README.md": _check_readme, "hub.md": _check_hub}


def test_every_doc_with_snippets_has_its_results_checked() -> None:
    assert {p.name for p in DOCS if snippets(p)} == set(_CHECKS)


@pytest.mark.parametrize("path", [p for p in DOCS if snippets(p)], ids=lambda p: p.name)
def test_snippets_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    if path.name == "hub.md":  # the Hub page talks to a Hub: the loopback one, with the shipped prior on it
        request.getfixturevalue("hub_server")
        from dwp_hub.training.publish import publish

        publish(ROOT / "priors" / "notmnist-7x7" / "1.0.0", "notmnist-7x7", "1.0.0", "hf-hub:my-org/notmnist-7x7")
    namespace: dict[str, object] = {"__name__": f"snippets_{path.stem}"}
    for i, code in enumerate(snippets(path)):
        try:
            exec(compile(code, f"{path.name}[python block {i}]", "exec"), namespace)  # noqa: S102 - our own docs
        except Exception as err:  # pragma: no cover - the message names the block
            raise AssertionError(f"{path.name}: python block {i} failed: {type(err).__name__}: {err}") from err
    _CHECKS[path.name](namespace)
