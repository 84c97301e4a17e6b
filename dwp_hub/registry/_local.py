"""A registry directory: ``<root>/index.json`` and ``<root>/<name>/<version>/`` folders.

The index records, for every version, the sha256 of every file. Loading verifies each file
against both the index and the version's own ``checksums.json``; a version folder without an
index around it (a Hub snapshot) is verified against ``checksums.json`` alone. Hidden files
(names starting with ``.``, such as ``.gitattributes``) are ignored; any other file not listed
is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dwp_hub._fs import atomic_write_text, publishable_mode, sha256_file
from dwp_hub.card import PriorCard, card_from_weights_file
from dwp_hub.constants import CHECKSUMS_FILE, INDEX_FILE, OPTIONAL_PRIOR_FILES, PRIOR_FILES
from dwp_hub.errors import CardError, IntegrityError, PriorExistsError, PriorNotFoundError
from dwp_hub.registry._names import Version, validate_name

INDEX_SCHEMA = 1
_ALLOWED = set(PRIOR_FILES) | set(OPTIONAL_PRIOR_FILES)


def folder_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every known file in a version folder except ``checksums.json`` itself."""
    return {f: sha256_file(folder / f) for f in sorted(_ALLOWED - {CHECKSUMS_FILE}) if (folder / f).is_file()}


def verify_folder(folder: Path, expected: dict[str, str] | None = None, name: str | None = None,
                  version: str | None = None) -> PriorCard:
    """Check a version folder file by file; return its card. Raises :class:`IntegrityError`
    naming the first bad file."""
    if not folder.is_dir():
        raise IntegrityError(f"{folder} is not a prior folder.")
    for f in PRIOR_FILES:
        if not (folder / f).is_file():
            raise IntegrityError(f"{folder / f} is missing; the prior folder is incomplete. Re-download or re-publish it.")
    extra = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in _ALLOWED)
    if extra:
        raise IntegrityError(
            f"Unexpected file(s) in {folder}: {', '.join(extra)}. A published prior holds only "
            f"{', '.join(sorted(_ALLOWED))}; remove the extra files."
        )
    own = _read_json(folder / CHECKSUMS_FILE) if (folder / CHECKSUMS_FILE).is_file() else None
    if expected is None and own is None:
        raise IntegrityError(f"{folder} has no {CHECKSUMS_FILE} and no registry index entry; cannot verify it.")
    hashes: dict[str, str] = {}  # each file is hashed once, then checked against both manifests
    for source, sums in (("index", expected), (CHECKSUMS_FILE, own)):
        if sums is None:
            continue
        listed = set(sums)
        missing_from_list = sorted(set(PRIOR_FILES) - listed)
        if missing_from_list:
            raise IntegrityError(f"{source} of {folder} does not list {', '.join(missing_from_list)}.")
        for f, want in sorted(sums.items()):
            path = folder / f
            if f not in _ALLOWED or f == CHECKSUMS_FILE:
                raise IntegrityError(f"{source} of {folder} lists an unexpected file {f!r}.")
            if not path.is_file():
                raise IntegrityError(f"{path} is missing.")
            got = hashes[f] if f in hashes else hashes.setdefault(f, sha256_file(path))
            if got != want:
                raise IntegrityError(
                    f"{path} is modified: sha256 {got}, expected {want} ({source}). "
                    "Refusing to load; re-download or re-publish this prior."
                )
        unlisted = sorted(p.name for p in folder.iterdir()
                          if p.name in _ALLOWED and p.name != CHECKSUMS_FILE and p.name not in sums)
        if unlisted:
            raise IntegrityError(f"{folder}: {', '.join(unlisted)} not covered by the {source}.")
    card = card_from_weights_file(folder / "model.safetensors")
    if (name is not None and card.name != name) or (version is not None and card.version != version):
        raise IntegrityError(
            f"{folder / 'model.safetensors'} holds the card of {card.spec}, not {name}@{version}: "
            "files were swapped between versions. Re-publish this version."
        )
    return card


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise IntegrityError(f"{path} is not valid JSON ({err}).") from err


class LocalRegistry:
    """A registry directory on disk (the embedded one, the user's, or any shared folder)."""

    def __init__(self, root: str | Path, label: str = "") -> None:
        self.root = Path(root)
        self.label = label or str(self.root)

    def __repr__(self) -> str:
        return f"LocalRegistry({self.label!r})"

    # -- index ---------------------------------------------------------------------------
    def index(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{name: {version: entry}}``; empty if the registry does not exist yet."""
        path = self.root / INDEX_FILE
        if not path.is_file():
            return {}
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA or not isinstance(data.get("priors"), dict):
            raise IntegrityError(f"{path} is not a dwp-hub registry index (schema {INDEX_SCHEMA}).")
        return data["priors"]

    def names(self) -> list[str]:
        return sorted(self.index())

    def versions(self, name: str) -> list[Version]:
        return sorted(Version.parse(v) for v in self.index().get(name, {}))

    def entry(self, name: str, version: Version) -> dict[str, Any]:
        try:
            return self.index()[name][str(version)]
        except KeyError as err:
            raise PriorNotFoundError(f"{name}@{version} is not in {self.label}.") from err

    def folder(self, name: str, version: Version) -> Path:
        return self.root / validate_name(name) / str(version)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_index(self, priors: dict[str, Any]) -> None:
        body = {"schema": INDEX_SCHEMA, "priors": {n: dict(sorted(v.items())) for n, v in sorted(priors.items())}}
        atomic_write_text(self.root / INDEX_FILE, json.dumps(body, indent=2, sort_keys=True) + "\n")

    # -- load / verify -------------------------------------------------------------------
    def verify(self, name: str, version: Version) -> PriorCard:
        """Verify every file of ``name@version``; return its card."""
        entry = self.entry(name, version)
        return verify_folder(self.folder(name, version), entry.get("files"), name, str(version))

    # -- publish -------------------------------------------------------------------------
    def add(self, staging: Path, card: PriorCard) -> Path:
        """Move a complete staging folder into place as ``card.name@card.version`` and index it.

        The staging folder must sit on the same file system (it is renamed, not copied).
        Raises :class:`PriorExistsError` if that version exists: versions are immutable.
        """
        version = Version.parse(card.version)
        dest = self.folder(card.name, version)
        with self._locked():
            priors = self.index()
            if str(version) in priors.get(card.name, {}) or dest.exists():
                raise PriorExistsError(
                    f"{card.name}@{version} already exists in {self.label}; versions are immutable. "
                    "Publish a new version instead (e.g. bump the patch number)."
                )
            files = folder_checksums(staging)
            atomic_write_text(staging / CHECKSUMS_FILE, json.dumps(files, indent=2, sort_keys=True) + "\n")
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staging, dest)
            priors.setdefault(card.name, {})[str(version)] = {
                "files": files,
                "kernel_size": card.arch.kernel_size,
                "source": card.source.domain,
                "created": card.created,
                "heldout_elbo": card.metrics.heldout_elbo,
                "description": card.description,
            }
            self._write_index(priors)
        return dest

    def staging_dir(self) -> Path:
        """A fresh temp folder inside the registry (same file system, so the final move is a
        rename). Hidden, so readers never mistake it for a prior."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        publishable_mode(path, directory=True)
        return path

    def remove_staging(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def card(self, name: str, version: Version) -> PriorCard:
        """The card of ``name@version`` read from its weights header (no torch, no hashing)."""
        path = self.folder(name, version) / "model.safetensors"
        try:
            return card_from_weights_file(path)
        except CardError:
            raise
