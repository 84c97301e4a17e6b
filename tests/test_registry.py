"""Registries: resolution (newest / pinned), search order, errors, immutable publishing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import dwp_hub
from dwp_hub import constants
from dwp_hub.errors import (
    CardError,
    DwpHubError,
    IntegrityError,
    InvalidNameError,
    InvalidVersionError,
    PriorExistsError,
    PriorNotFoundError,
    VersionNotFoundError,
)
from dwp_hub.registry import LocalRegistry, PublishResult, Version, all_names, registries, resolve
from dwp_hub.training.publish import publish


def _publish_copy(tiny_registry: Path, dest: Path, version: str, name: str = "tiny-3x3",
                  description: str | None = None) -> PublishResult:
    return publish(tiny_registry / "tiny-3x3" / "1.0.0", name, version, dest, description)


def _checksums(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# -- resolution --------------------------------------------------------------------------------
def test_name_resolves_to_newest_and_pins(tiny_registry: Path) -> None:
    assert str(resolve("tiny-7x7").version) == "1.1.0"
    assert str(resolve("tiny-7x7@1.0.0").version) == "1.0.0"
    newest, pinned = dwp_hub.load("tiny-7x7"), dwp_hub.load("tiny-7x7@1.0.0")
    assert newest.card.version == "1.1.0" and pinned.card.version == "1.0.0"
    assert newest.card.weights_sha256 != pinned.card.weights_sha256
    assert newest.source.endswith("tiny-7x7@1.1.0") and "DWP_HUB_REGISTRY" in newest.source
    assert resolve("tiny-7x7").registry.root == tiny_registry


def test_load_casts_to_the_dtype_asked_for_alone(tiny_registry: Path) -> None:
    import torch

    prior = dwp_hub.load("tiny-3x3@1.0.0", dtype=torch.float64)  # no device given: stays on the CPU
    params = list(prior.vae.parameters())
    assert params and all(p.dtype == torch.float64 and p.device.type == "cpu" for p in params)
    assert all(p.dtype == torch.float32 for p in dwp_hub.load("tiny-3x3@1.0.0").vae.parameters())


def test_version_order_is_numeric_not_lexicographic(tiny_registry: Path) -> None:
    for v in ("1.9.0", "1.10.0", "1.2.0"):
        _publish_copy(tiny_registry, tiny_registry, v)
    assert str(resolve("tiny-3x3").version) == "1.10.0"
    assert [str(v) for v in LocalRegistry(tiny_registry).versions("tiny-3x3")] == ["1.0.0", "1.2.0", "1.9.0", "1.10.0"]
    # The listing orders versions the same way (newest first) and marks 1.10.0 as the newest.
    rows = [(i.version, i.latest) for i in dwp_hub.list_priors(all_versions=True) if i.name == "tiny-3x3"]
    assert rows == [("1.10.0", True), ("1.9.0", False), ("1.2.0", False), ("1.0.0", False)]
    assert [i.version for i in dwp_hub.list_priors() if i.name == "tiny-3x3"] == ["1.10.0"]


def test_search_order_env_then_user_then_embedded(tiny_registry: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    embedded, second = tmp_path / "embedded", tmp_path / "second"
    monkeypatch.setattr(constants, "embedded_registry", lambda: embedded)
    user = constants.user_registry()
    for reg in (embedded, user, second):
        _publish_copy(tiny_registry, reg, "1.0.0")
    monkeypatch.setenv("DWP_HUB_REGISTRY", os.pathsep.join([str(tiny_registry), str(second)]))
    labels = [r.label for r in registries()]
    assert labels == [f"DWP_HUB_REGISTRY:{tiny_registry}", f"DWP_HUB_REGISTRY:{second}", "user", "embedded"]
    # The listing shows a version held by several registries once, from the registry that resolves it.
    rows = [i for i in dwp_hub.list_priors(all_versions=True) if i.name == "tiny-3x3"]
    assert [(i.version, i.registry) for i in rows] == [("1.0.0", f"DWP_HUB_REGISTRY:{tiny_registry}")]

    # The same version everywhere: the earliest registry wins.
    assert resolve("tiny-3x3@1.0.0").registry.root == tiny_registry
    monkeypatch.setenv("DWP_HUB_REGISTRY", os.pathsep.join([str(second), str(tiny_registry)]))
    assert resolve("tiny-3x3").registry.root == second
    monkeypatch.delenv("DWP_HUB_REGISTRY")
    assert resolve("tiny-3x3").registry.label == "user"
    shutil.rmtree(user)
    assert resolve("tiny-3x3").registry.label == "embedded"
    assert dwp_hub.load("tiny-3x3").source == "embedded:tiny-3x3@1.0.0"

    # A newer version in a later registry beats an older one in an earlier registry.
    monkeypatch.setenv("DWP_HUB_REGISTRY", str(tiny_registry))
    _publish_copy(tiny_registry, embedded, "1.0.1")
    r = resolve("tiny-3x3")
    assert (str(r.version), r.registry.label) == ("1.0.1", "embedded")
    assert str(resolve("tiny-3x3@1.0.0").version) == "1.0.0"


def test_list_priors(tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "no-embedded")  # only the tiny priors
    infos = dwp_hub.list_priors()
    assert [(i.name, i.version) for i in infos] == [("tiny-3x3", "1.0.0"), ("tiny-5x5", "1.0.0"), ("tiny-7x7", "1.1.0")]
    assert all(i.latest for i in infos)
    assert {i.kernel_size for i in infos} == {3, 5, 7}
    reg = LocalRegistry(tiny_registry)
    for i in infos:  # every column comes from that version's own card
        card = reg.card(i.name, Version.parse(i.version))
        assert (i.kernel_size, i.source, i.heldout_elbo, i.description) == (
            card.kernel_size, card.source.domain, card.metrics.heldout_elbo, card.description)
        assert i.registry == f"DWP_HUB_REGISTRY:{tiny_registry}"
    assert len({i.description for i in infos}) == len(infos)  # descriptions are not all alike
    every = dwp_hub.list_priors(all_versions=True)
    assert [(i.spec, i.latest) for i in every if i.name == "tiny-7x7"] == [("tiny-7x7@1.1.0", True), ("tiny-7x7@1.0.0", False)]
    assert all_names() == ["tiny-3x3", "tiny-5x5", "tiny-7x7"]


def test_empty_and_missing_registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "nothing")
    monkeypatch.setenv("DWP_HUB_REGISTRY", str(tmp_path / "also-nothing"))
    assert dwp_hub.list_priors() == [] and all_names() == []
    with pytest.raises(PriorNotFoundError, match="Known priors: none"):
        resolve("notmnist-7x7")
    assert not (tmp_path / "also-nothing").exists()  # reading never creates a registry


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("typo", "closest"), [("tiny-7x8", "tiny-7x7"), ("tiny7x7", "tiny-7x7"), ("tiny-3x", "tiny-3x3"),
                                               ("tiny-5x5x", "tiny-5x5")])
def test_unknown_name_lists_closest(tiny_registry: Path, typo: str, closest: str) -> None:
    with pytest.raises(PriorNotFoundError, match=f"Did you mean {closest}") as info:
        dwp_hub.load(typo)
    assert isinstance(info.value, LookupError) and not isinstance(info.value, VersionNotFoundError)
    assert "dwp-hub list" in str(info.value)
    assert info.value.name == typo and closest in info.value.candidates  # for front ends that offer a choice


def test_unknown_name_without_close_match(tiny_registry: Path) -> None:
    with pytest.raises(PriorNotFoundError) as info:
        resolve("zzzzzz")
    assert "Did you mean" not in str(info.value) and "tiny-3x3, tiny-5x5, tiny-7x7" in str(info.value)


def test_version_not_found(tiny_registry: Path) -> None:
    with pytest.raises(VersionNotFoundError, match=r"no version 9\.9\.9; available: 1\.0\.0, 1\.1\.0") as info:
        dwp_hub.load("tiny-7x7@9.9.9")
    assert isinstance(info.value, PriorNotFoundError)
    assert info.value.name == "tiny-7x7"
    assert info.value.candidates == ("tiny-7x7@1.0.0", "tiny-7x7@1.1.0")  # each one loads as it is


@pytest.mark.parametrize("spec", ["tiny-7x7@1.0", "tiny-7x7@v1.0.0", "tiny-7x7@", "tiny-7x7@01.0.0", "tiny-7x7@1.0.0-beta"])
def test_malformed_version(tiny_registry: Path, spec: str) -> None:
    with pytest.raises(InvalidVersionError, match="MAJOR.MINOR.PATCH") as info:
        dwp_hub.load(spec)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("spec", "says"), [
    ("../tiny-7x7", "path separators"), ("tiny-7x7/1.0.0", "path separators"), ("/etc", "path separators"),
    ("Tiny-7x7", "lowercase"),
])
def test_bad_names(tiny_registry: Path, spec: str, says: str) -> None:
    with pytest.raises(InvalidNameError, match=says):
        dwp_hub.load(spec)


def test_hub_reference_is_not_a_local_name(tiny_registry: Path) -> None:
    with pytest.raises(PriorNotFoundError, match="Hub reference"):
        resolve("hf-hub:org/repo")


def test_malformed_index(tiny_registry: Path) -> None:
    (tiny_registry / "index.json").write_text(json.dumps({"schema": 99, "priors": {}}))
    with pytest.raises(IntegrityError, match="index.json"):
        resolve("tiny-7x7")
    (tiny_registry / "index.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        dwp_hub.list_priors()


def test_flipped_byte_is_refused_naming_both_hashes(tiny_registry: Path) -> None:
    weights = tiny_registry / "tiny-7x7" / "1.0.0" / "model.safetensors"
    recorded = LocalRegistry(tiny_registry).entry("tiny-7x7", Version(1, 0, 0))["files"]["model.safetensors"]
    assert recorded == hashlib.sha256(weights.read_bytes()).hexdigest()
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # one bit of the last tensor
    weights.write_bytes(bytes(raw))
    actual = hashlib.sha256(bytes(raw)).hexdigest()
    for call in (lambda: dwp_hub.load("tiny-7x7@1.0.0"), lambda: LocalRegistry(tiny_registry).verify("tiny-7x7",
                                                                                                     Version(1, 0, 0))):
        with pytest.raises(IntegrityError) as info:
            call()
        err = info.value
        assert isinstance(err, OSError)
        assert (err.path, err.expected, err.actual) == (weights, recorded, actual)
        assert f"{weights} is modified: sha256 {actual}, expected {recorded} (index)" in str(err)
    assert dwp_hub.load("tiny-7x7").card.version == "1.1.0"  # other versions still load


def test_malformed_entry_is_an_integrity_error_not_a_missing_version(tiny_registry: Path) -> None:
    index = json.loads((tiny_registry / "index.json").read_text())
    index["priors"]["tiny-7x7"]["1.0.0"] = "not an entry"
    (tiny_registry / "index.json").write_text(json.dumps(index))
    reg = LocalRegistry(tiny_registry)
    assert reg.versions("tiny-7x7") == [Version(1, 1, 0)]  # hidden from listing ...
    assert [(p.name, p.version) for p in reg.index_problems()] == [("tiny-7x7", "1.0.0")]
    for call in (lambda: reg.entry("tiny-7x7", Version(1, 0, 0)), lambda: reg.verify("tiny-7x7", Version(1, 0, 0))):
        with pytest.raises(IntegrityError, match=r"index\.json: the entry of 'tiny-7x7@1\.0\.0' is malformed"):
            call()  # ... but asking for it names the broken index, never "no such version"
    with pytest.raises(PriorNotFoundError, match="not in"):
        reg.entry("tiny-7x7", Version(3, 0, 0))
    reg.verify("tiny-7x7", Version(1, 1, 0))


def test_publish_refuses_a_version_whose_index_entry_is_malformed(tiny_registry: Path) -> None:
    index = json.loads((tiny_registry / "index.json").read_text())
    index["priors"]["tiny-7x7"]["1.0.0"]["files"] = {}
    (tiny_registry / "index.json").write_text(json.dumps(index))
    before = (tiny_registry / "index.json").read_bytes()
    with pytest.raises(IntegrityError, match=r"Cannot publish tiny-7x7@1\.0\.0: .*index\.json: the entry of 'tiny-7x7"):
        publish(tiny_registry / "tiny-7x7" / "1.1.0", "tiny-7x7", "1.0.0", tiny_registry)
    assert (tiny_registry / "index.json").read_bytes() == before  # a person must look at it; nothing is papered over
    publish(tiny_registry / "tiny-7x7" / "1.1.0", "tiny-7x7", "2.0.0", tiny_registry)  # other versions publish ...
    after = json.loads((tiny_registry / "index.json").read_text())["priors"]["tiny-7x7"]
    assert sorted(after) == ["1.0.0", "1.1.0", "2.0.0"] and after["1.0.0"]["files"] == {}  # ... and keep the bad entry


@pytest.mark.parametrize(("error", "builtin"), [
    (PriorNotFoundError, LookupError), (VersionNotFoundError, LookupError), (VersionNotFoundError, PriorNotFoundError),
    (InvalidNameError, ValueError), (InvalidVersionError, ValueError), (IntegrityError, OSError),
    (CardError, ValueError), (PriorExistsError, FileExistsError),
])
def test_errors_are_also_the_builtin_a_caller_catches(error: type[Exception], builtin: type[Exception]) -> None:
    assert issubclass(error, builtin) and issubclass(error, DwpHubError)


# -- publishing ----------------------------------------------------------------------------------
def test_publish_new_version(tiny_registry: Path, tmp_path: Path) -> None:
    result = _publish_copy(tiny_registry, tmp_path / "reg", "2.0.0", name="my-prior", description="A copy.")
    reg = LocalRegistry(tmp_path / "reg")
    dest = reg.folder("my-prior", Version(2, 0, 0))
    assert (result.path, result.target, result.location, result.spec) == (dest, "local", str(tmp_path / "reg"),
                                                                          "my-prior@2.0.0")
    assert str(result) == os.fspath(result) == str(dest) and result.url is None and result.commit is None
    assert result.files == reg.entry("my-prior", Version(2, 0, 0))["files"]
    assert result.files == json.loads((dest / "checksums.json").read_text())
    card = reg.verify("my-prior", Version(2, 0, 0))
    assert result.weights_sha256 == card.weights_sha256 and result.ref == "my-prior@2.0.0"
    assert (card.name, card.version, card.description) == ("my-prior", "2.0.0", "A copy.")
    assert sorted(p.name for p in (tmp_path / "reg").iterdir() if not p.name.startswith(".")) == ["index.json", "my-prior"]
    assert not list((tmp_path / "reg").glob(".staging-*"))  # no staging leftovers
    source = dwp_hub.load("tiny-3x3@1.0.0").card
    assert card.weights_sha256 == source.weights_sha256  # same tensors, new identity


def test_published_versions_are_immutable(tiny_registry: Path) -> None:
    folder = tiny_registry / "tiny-7x7" / "1.0.0"
    before, index_before = _checksums(folder), (tiny_registry / "index.json").read_bytes()
    with pytest.raises(PriorExistsError, match="immutable") as info:
        publish(tiny_registry / "tiny-7x7" / "1.1.0", "tiny-7x7", "1.0.0", tiny_registry)
    assert isinstance(info.value, FileExistsError)
    assert _checksums(folder) == before and (tiny_registry / "index.json").read_bytes() == index_before
    assert not list(tiny_registry.glob(".staging-*"))
    # The lower-level add() refuses too, even when only the folder exists (no index entry).
    reg = LocalRegistry(tiny_registry)
    staging = reg.staging_dir()
    shutil.copytree(tiny_registry / "tiny-7x7" / "1.1.0", staging, dirs_exist_ok=True)
    with pytest.raises(PriorExistsError):
        reg.add(staging, reg.card("tiny-7x7", Version(1, 0, 0)))
    reg.remove_staging(staging)
    shutil.copytree(folder, tiny_registry / "tiny-3x3" / "5.0.0")
    with pytest.raises(PriorExistsError):
        _publish_copy(tiny_registry, tiny_registry, "5.0.0")


def test_index_write_is_atomic(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A publish that dies while replacing index.json leaves the old index byte for byte (never a half-written
    one), no temp file, and a folder the next publish adopts."""
    index = tiny_registry / "index.json"
    before = index.read_bytes()
    real_replace = os.replace

    def crash_on_index(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "index.json":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash_on_index)
        with pytest.raises(OSError, match="No space left"):
            _publish_copy(tiny_registry, tiny_registry, "3.0.0")
    assert index.read_bytes() == before
    assert not list(tiny_registry.glob(".index.json.*"))
    assert [str(v) for v in LocalRegistry(tiny_registry).versions("tiny-3x3")] == ["1.0.0"]
    assert [o.version for o in LocalRegistry(tiny_registry).orphans()] == ["3.0.0"]
    assert str(_publish_copy(tiny_registry, tiny_registry, "3.0.0")) == str(tiny_registry / "tiny-3x3" / "3.0.0")
    assert str(resolve("tiny-3x3").version) == "3.0.0" and LocalRegistry(tiny_registry).orphans() == []


@pytest.mark.parametrize(("name", "version", "error"), [("../evil", "1.0.0", InvalidNameError), ("ok", "1.0", InvalidVersionError),
                                                       ("Bad", "1.0.0", InvalidNameError)])
def test_publish_validates_before_writing(tiny_registry: Path, tmp_path: Path, name: str, version: str,
                                          error: type[Exception]) -> None:
    with pytest.raises(error):
        publish(tiny_registry / "tiny-3x3" / "1.0.0", name, version, tmp_path / "reg")
    assert not (tmp_path / "reg").exists() and not (tmp_path / "evil").exists()


def test_publish_incomplete_source(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(IntegrityError, match="model.safetensors is missing"):
        publish(tmp_path / "src", "x", "1.0.0", tmp_path / "reg")


def test_unwritable_destination_below_a_file(tiny_registry: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(IntegrityError, match="Cannot write to registry"):
        _publish_copy(tiny_registry, blocker / "registry", "1.0.0")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_destination_read_only(tiny_registry: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(IntegrityError, match="Cannot write to registry"):
            _publish_copy(tiny_registry, ro / "registry", "1.0.0")
    finally:
        ro.chmod(0o700)
