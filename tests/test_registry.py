"""Registries: resolution (newest / pinned), search order, errors, immutable publishing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import dwp_hub
from dwp_hub import constants
from dwp_hub.errors import (
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


def test_version_order_is_numeric_not_lexicographic(tiny_registry: Path) -> None:
    for v in ("1.9.0", "1.10.0", "1.2.0"):
        _publish_copy(tiny_registry, tiny_registry, v)
    assert str(resolve("tiny-3x3").version) == "1.10.0"
    assert [str(v) for v in LocalRegistry(tiny_registry).versions("tiny-3x3")] == ["1.0.0", "1.2.0", "1.9.0", "1.10.0"]


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


def test_unknown_name_without_close_match(tiny_registry: Path) -> None:
    with pytest.raises(PriorNotFoundError) as info:
        resolve("zzzzzz")
    assert "Did you mean" not in str(info.value) and "tiny-3x3, tiny-5x5, tiny-7x7" in str(info.value)


def test_version_not_found(tiny_registry: Path) -> None:
    with pytest.raises(VersionNotFoundError, match=r"no version 9\.9\.9; available: 1\.0\.0, 1\.1\.0") as info:
        dwp_hub.load("tiny-7x7@9.9.9")
    assert isinstance(info.value, PriorNotFoundError)


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
