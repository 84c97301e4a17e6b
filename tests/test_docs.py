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


def test_there_are_snippets_to_run() -> None:
    assert len(snippets(ROOT / "README.md")) >= 2 and snippets(ROOT / "docs" / "hub.md")


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
