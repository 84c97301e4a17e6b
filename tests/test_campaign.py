"""The hardening campaign of issue 16, reduced to run in the suite (``tools/hardening_campaign.py --quick``):
2 tampering kinds and a harmless edit through load and the CLI, 50 hostile names, one round of 3
concurrent publishers, 2 kill -9 trials. The full campaign is the script; its last output is in
docs/results/hardening_campaign.md."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import tools_package  # noqa: F401 - makes `import tools` work

from dwp_hub.errors import PriorExistsError
from dwp_hub.registry import LocalRegistry
from dwp_hub.training.publish import publish
from tools import hardening_campaign as hc


def test_quick_campaign(_tiny_registry_master: Path, tmp_path: Path) -> None:
    rows = hc.run_campaign(hc.QUICK, work_dir=tmp_path, master=_tiny_registry_master, log=lambda s: None)
    assert [r.category for r in rows] == ["tamper", "hostile names", "concurrent publishes", "kill -9 during publish"]
    assert all(r.counts["trials"] for r in rows)
    assert not hc.failed(rows), hc.report(rows, [])
    assert not list(tmp_path.iterdir())  # the work dir is removed


def test_cli_outcomes_are_classified() -> None:
    assert hc.classify_cli(0, "OK", "") == "ok"
    assert hc.classify_cli(1, "", "Error: tiny-7x8 is not a prior.\n") == "clean"
    assert hc.classify_cli(1, "", "FAIL a@1.0.0 (reg): bad\n1 problem(s) found.\n") == "clean"
    assert hc.classify_cli(2, "", "Usage: dwp-hub info [OPTIONS] SPEC\nTry 'dwp-hub info --help'\n") == "clean"
    assert hc.classify_cli(1, "", "Traceback (most recent call last):\n  ...\nTypeError: x\n") == "raw"
    assert hc.classify_cli(1, "", "Unexpected error (OSError): x\nRun again with --debug for the traceback.\n") == "raw"
    assert hc.classify_cli(1, "", "Error: first line\nsecond line\n") == "raw"
    assert hc.classify_cli(-9, "", "") == "raw"


def test_hostile_strings_are_many_and_deterministic() -> None:
    names = hc.hostile_strings(2000, seed=0)
    assert len(names) == len(set(names)) == 2000 and names == hc.hostile_strings(2000, seed=0)
    assert any("\x00" in s for s in names) and any(len(s) >= 100_000 for s in names)
    assert any(s.startswith("hf-hub:") for s in names) and any("\u0662" in s for s in names)


def test_refused_republish_after_a_crash_cleans_leftovers(tiny_registry: Path) -> None:
    """Found by the campaign: a publish killed after indexing its version, before removing its staging
    lock, left '.staging-*.lock' behind; the retry was refused (the version exists) and left it too."""
    crashed = LocalRegistry(tiny_registry)
    staging = crashed.staging_dir()
    shutil.rmtree(staging)  # renamed into place and indexed ...
    os.close(crashed._staging_locks.pop(staging))  # ... then the process died: its lock file stays
    (tiny_registry / ".index.json.abc123.tmp").write_text("{")
    with pytest.raises(PriorExistsError):
        publish(tiny_registry / "tiny-3x3" / "1.0.0", "tiny-3x3", "1.0.0", tiny_registry)
    assert not [n for n in os.listdir(tiny_registry) if n.startswith((".staging", ".index.json."))]
    live = LocalRegistry(tiny_registry)
    in_progress = live.staging_dir()  # a live publish is never touched
    with pytest.raises(PriorExistsError):
        publish(tiny_registry / "tiny-3x3" / "1.0.0", "tiny-3x3", "1.0.0", tiny_registry)
    assert in_progress.is_dir()
    live.remove_staging(in_progress)
