"""Issue 16: hostile or broken inputs get clean errors, crashes never block a version, concurrent
publishes never fail spuriously, and every field that changes the computation is protected."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from safetensors.torch import load_file, safe_open, save_file
from typer.testing import CliRunner

import dwp_hub
from dwp_hub import constants
from dwp_hub._api import load_folder
from dwp_hub._listing import list_priors
from dwp_hub.card import card_from_weights_file
from dwp_hub.cli import app
from dwp_hub.constants import CARD_METADATA_KEY
from dwp_hub.errors import CardError, IntegrityError, PriorExistsError
from dwp_hub.model._io import read_weights, tensors_sha256, write_weights
from dwp_hub.registry import LocalRegistry, Version, resolve
from dwp_hub.registry._local import folder_checksums
from dwp_hub.training.publish import publish

runner = CliRunner()


def _cli(*args: str) -> object:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture()
def only_tiny(tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "no-embedded")
    return tiny_registry


def _edit_index(reg: Path, edit) -> None:  # type: ignore[no-untyped-def]
    index = json.loads((reg / "index.json").read_text())
    edit(index["priors"])
    (reg / "index.json").write_text(json.dumps(index))


def _rewrite_card(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata())
    card = json.loads(meta[CARD_METADATA_KEY])
    edit(card)
    meta[CARD_METADATA_KEY] = json.dumps(card)
    save_file(tensors, str(path), metadata=meta)


def _rehash_folder(folder: Path) -> None:
    (folder / "checksums.json").write_text(json.dumps(folder_checksums(folder), indent=2, sort_keys=True))


# -- item 1: the activation (every computation field) is bound to the weights hash -------------------
def test_new_cards_bind_the_architecture(tiny_registry: Path) -> None:
    card = dwp_hub.load("tiny-7x7").card
    assert card.weights_sha256_scope == "tensors+arch"
    _, tensors = read_weights(tiny_registry / "tiny-7x7" / "1.1.0" / "model.safetensors")
    assert card.weights_sha256 != tensors_sha256(tensors)  # covers more than the tensors


def test_shipped_legacy_prior_activation_swap_is_refused(tmp_path: Path) -> None:
    """cifar10-3x3@1.2.0 (relu) was published before the binding: its architecture is pinned."""
    src = constants.embedded_registry() / "cifar10-3x3" / "1.2.0"
    folder = tmp_path / "1.2.0"
    shutil.copytree(src, folder)
    assert load_folder(folder).card.arch.activation == "relu"  # untouched: loads
    _rewrite_card(folder / "model.safetensors", lambda c: c["arch"].pop("activation"))  # -> elu
    _rehash_folder(folder)
    with pytest.raises(CardError, match="model.safetensors"):
        load_folder(folder)


def test_publish_upgrades_a_legacy_scope_card(tiny_registry: Path, tmp_path: Path) -> None:
    folder = tmp_path / "fit"
    shutil.copytree(tiny_registry / "tiny-3x3" / "1.0.0", folder)
    card, tensors = read_weights(folder / "model.safetensors")
    legacy = dataclasses.replace(card, weights_sha256=tensors_sha256(tensors), weights_sha256_scope="tensors")
    write_weights(folder / "model.safetensors", tensors, legacy)
    assert read_weights(folder / "model.safetensors")[0].weights_sha256_scope == "tensors"  # legacy still loads
    dest = publish(folder, "up", "1.0.0", tmp_path / "reg").path
    assert card_from_weights_file(dest / "model.safetensors").weights_sha256_scope == "tensors+arch"
    assert LocalRegistry(tmp_path / "reg").verify("up", Version(1, 0, 0)).weights_sha256 == card.weights_sha256


# -- item 2: malformed shapes; verify reports every failure ---------------------------------------------
@pytest.mark.parametrize("body", ["[]", '{"schema": 1, "priors": []}', "[" * 5000 + "]" * 5000,
                                  '{"schema": 1, "priors": {"x": {"1.0.0": {"kernel_size": ' + "9" * 5000 + "}}}}"])
def test_malformed_index_is_an_integrity_error(tiny_registry: Path, body: str) -> None:
    (tiny_registry / "index.json").write_text(body)
    with pytest.raises(IntegrityError, match="index.json"):
        LocalRegistry(tiny_registry).index()


def test_verify_reports_every_failure(only_tiny: Path) -> None:
    reg = only_tiny
    _edit_index(reg, lambda p: p["tiny-5x5"].update({"1.0.0": "oops"}))
    weights = reg / "tiny-7x7" / "1.0.0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    shutil.copytree(reg / "tiny-3x3" / "1.0.0", reg / "tiny-3x3" / "7.0.0")  # an orphan
    res = _cli("verify")
    assert res.exit_code == 1, res.output
    assert "tiny-5x5@1.0.0" in res.stderr and "index.json" in res.stderr
    assert "tiny-7x7@1.0.0" in res.stderr and "model.safetensors" in res.stderr
    assert "tiny-3x3@7.0.0" in res.stderr and "not in the index" in res.stderr
    assert res.stdout.count("OK") == 2  # tiny-7x7@1.1.0 and tiny-3x3@1.0.0 still checked
    assert "Traceback" not in res.output


# -- item 3: non-regular files never hang or crash -------------------------------------------------------
def _in_thread(fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    out: dict[str, object] = {}

    def run() -> None:
        out["value"] = fn()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return t.is_alive(), out.get("value")


@pytest.mark.parametrize("kind", ["fifo", "directory", "loop"])
def test_info_refuses_non_regular_weights(tiny_registry: Path, kind: str) -> None:
    p = tiny_registry / "tiny-7x7" / "1.1.0" / "model.safetensors"
    p.unlink()
    {"fifo": lambda: os.mkfifo(p), "directory": p.mkdir, "loop": lambda: p.symlink_to(p.name)}[kind]()
    try:
        hung, res = _in_thread(lambda: _cli("info", "tiny-7x7"))
    finally:
        if kind == "fifo":  # unblock a hung reader, if any
            fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK) if hung else None
            if fd is not None:
                os.close(fd)
    assert not hung, "info hung on a FIFO"
    assert res.exit_code == 1 and "Error:" in res.stderr and "model.safetensors" in res.stderr
    assert "Unexpected error" not in res.stderr
    what = {"fifo": "is a FIFO (named pipe), not a regular file", "directory": "is a directory, not a regular file",
            "loop": "is a symlink loop, not a regular file"}[kind]
    assert f"model.safetensors {what}" in res.stderr
    assert "'dwp-hub remove tiny-7x7@1.1.0 --yes'" in res.stderr  # what to do about it
    hung, res = _in_thread(lambda: _cli("verify"))
    assert not hung and res.exit_code == 1 and "FAIL tiny-7x7@1.1.0" in res.stderr
    assert ("a symlink loop" if kind == "loop" else "is not a regular file") in res.stderr


# -- item 4: one bad index key hides nothing else ----------------------------------------------------------
def test_non_ascii_version_key_hides_nothing(tiny_registry: Path) -> None:
    entry = json.loads((tiny_registry / "index.json").read_text())["priors"]["tiny-7x7"]["1.1.0"]
    _edit_index(tiny_registry, lambda p: p["tiny-7x7"].update({"1\u0662.0.0": entry}))
    _edit_index(tiny_registry, lambda p: p.update({"Bad/Name": {"1.0.0": entry}}))
    specs = {i.spec for i in list_priors(regs=[LocalRegistry(tiny_registry)])}
    assert specs == {"tiny-7x7@1.1.0", "tiny-5x5@1.0.0", "tiny-3x3@1.0.0"}
    assert str(resolve("tiny-7x7").version) == "1.1.0"
    assert dwp_hub.load("tiny-7x7").card.version == "1.1.0"
    res = _cli("list")
    assert res.exit_code == 0 and "tiny-7x7" in res.stdout


# -- item 5: concurrent publishes ------------------------------------------------------------------------------
def test_concurrent_publishes_all_succeed(tiny_registry: Path, tmp_path: Path) -> None:
    dest, src = tmp_path / "reg", tiny_registry / "tiny-3x3" / "1.0.0"
    errors: list[BaseException] = []

    def one(version: str) -> None:
        try:
            publish(src, "conc", version, dest)
        except BaseException as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    for rnd in range(3):
        threads = [threading.Thread(target=one, args=(f"{rnd}.{i}.0",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    reg = LocalRegistry(dest)
    assert len(reg.versions("conc")) == 24
    assert not [p.name for p in dest.iterdir() if p.name.startswith((".staging", ".index"))]


# -- item 6: a crash between rename and index write is recoverable ----------------------------------------
class _Crash(BaseException):
    pass


def _crash_before_index(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, priors):  # type: ignore[no-untyped-def]
        raise _Crash

    monkeypatch.setattr(LocalRegistry, "_write_index", boom)


def test_orphan_is_reported_then_adopted(only_tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = only_tiny / "tiny-3x3" / "1.0.0"
    with monkeypatch.context() as m:
        _crash_before_index(m)
        with pytest.raises(_Crash):
            publish(src, "tiny-3x3", "2.0.0", only_tiny)
    orphan = only_tiny / "tiny-3x3" / "2.0.0"
    assert orphan.is_dir()  # orphaned
    before = {p.name: (p.stat().st_ino, p.read_bytes()) for p in orphan.iterdir()}
    res = _cli("verify")
    assert res.exit_code == 1 and "tiny-3x3@2.0.0" in res.stderr and "not in the index" in res.stderr
    dest = publish(src, "tiny-3x3", "2.0.0", only_tiny).path  # the retry succeeds
    # adopted in place: the very files the crashed publish left (same inodes, same bytes), not a fresh copy
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in dest.iterdir()} == before
    assert "checksums.json" in before and "model.safetensors" in before
    assert dwp_hub.load("tiny-3x3@2.0.0").card.version == "2.0.0"
    assert dest == only_tiny / "tiny-3x3" / "2.0.0"
    assert _cli("verify").exit_code == 0
    with pytest.raises(PriorExistsError):  # and now it is immutable
        publish(src, "tiny-3x3", "2.0.0", only_tiny)


def test_orphan_with_other_weights_is_replaced(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        _crash_before_index(m)
        with pytest.raises(_Crash):
            publish(tiny_registry / "tiny-7x7" / "1.0.0", "tiny-7x7", "3.0.0", tiny_registry)
    publish(tiny_registry / "tiny-7x7" / "1.1.0", "tiny-7x7", "3.0.0", tiny_registry)
    assert (dwp_hub.load("tiny-7x7@3.0.0").card.weights_sha256
            == dwp_hub.load("tiny-7x7@1.1.0").card.weights_sha256)


def test_crash_leftovers_are_cleaned(tiny_registry: Path) -> None:
    crashed = LocalRegistry(tiny_registry)
    staging = crashed.staging_dir()
    (staging / "model.safetensors").write_bytes(b"partial")
    os.close(crashed._staging_locks.pop(staging))  # the process died: its lock is released
    (tiny_registry / ".index.json.abc123.tmp").write_text("{")
    live = LocalRegistry(tiny_registry)
    in_progress = live.staging_dir()  # another publish, still running
    publish(tiny_registry / "tiny-3x3" / "1.0.0", "tiny-3x3", "4.0.0", tiny_registry)
    left = sorted(p.name for p in tiny_registry.iterdir() if p.name.startswith("."))
    assert staging.name not in left and ".index.json.abc123.tmp" not in left
    assert in_progress.is_dir()  # a live staging folder is never touched
    live.remove_staging(in_progress)
    assert not [n for n in os.listdir(tiny_registry) if n.startswith(".staging")]


# -- item 7: Hub references huggingface_hub would refuse --------------------------------------------------
@pytest.mark.parametrize("spec", ["hf-hub:org/repo.git", "hf-hub:a--b/c", "hf-hub:org/re--po"])
def test_hub_refs_validated_by_huggingface_hub(spec: str) -> None:
    res = _cli("info", spec)
    assert res.exit_code == 1 and "Error:" in res.stderr and "Unexpected error" not in res.stderr
    # refused by the parser, before any request (offline or not, a request would fail with another message)
    assert "no '--', '..' or trailing '.git'" in res.stderr and "Hub" not in res.stderr
