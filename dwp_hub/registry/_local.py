"""A registry directory: ``<root>/index.json`` and ``<root>/<name>/<version>/`` folders.

The index records, for every version, the sha256 of every file. Loading verifies each file
against both the index and the version's own ``checksums.json``; a version folder without an
index around it (a Hub snapshot) is verified against ``checksums.json`` alone. Hidden files
(names starting with ``.``, such as ``.gitattributes``) are ignored; any other file not listed
is refused, and so is anything that is not a regular file (a FIFO, a device, a directory or a
symlink loop where a file belongs) -- before it is opened.

A malformed index entry (a string, a bad name or version key, ``files`` missing or not a mapping
of file names to sha256) hides only itself: :meth:`LocalRegistry.index` returns the other
entries, :meth:`LocalRegistry.index_problems` lists the bad ones, and asking for a bad entry
raises :class:`~dwp_hub.errors.IntegrityError` naming ``index.json``.

Every version folder -- a ``fit`` draft, a registry staging folder, the folder a Hub commit is
made from -- is written by ONE function, :func:`write_version`. Publishing
(:meth:`LocalRegistry.add`) verifies such a complete staging folder, fsyncs it, renames it into
place and then writes the index, all under a registry lock. A crash between the rename and
the index write leaves a complete *orphan* version folder; the next publish of that version
adopts it (same weights) or replaces it (it was never visible), and ``dwp-hub verify`` reports
orphans. Staging folders and temp index files left by crashed publishes are removed under the lock
by the next publish, even one refused because its version is already indexed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dwp_hub._fs import (
    NotRegularFileError,
    atomic_path,
    atomic_write_text,
    fsync_dir,
    fsync_file,
    open_regular,
    publishable_mode,
    sha256_file,
)
from dwp_hub.card import PriorCard, card_from_weights_file
from dwp_hub.constants import CHECKSUMS_FILE, INDEX_FILE, OPTIONAL_PRIOR_FILES, PRIOR_FILES
from dwp_hub.errors import (
    DwpHubError,
    IntegrityError,
    PriorExistsError,
    PriorNotFoundError,
)
from dwp_hub.registry._names import Version, validate_name

if TYPE_CHECKING:
    import torch

__all__ = [
    "CARD_ONLY_RECIPE_KEYS", "INDEX_SCHEMA", "IndexProblem", "LocalRegistry", "Orphan", "PublishResult", "folder_checksums",
    "recipe_yaml", "verify_folder", "write_version",
]

INDEX_SCHEMA = 1
_ALLOWED = set(PRIOR_FILES) | set(OPTIONAL_PRIOR_FILES)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_STAGING = ".staging-"
#: A staging folder without a lock file (written by an older dwp-hub) counts as abandoned after this long.
_LEGACY_STAGING_AGE_S = 3600.0
#: Files of a version folder taken as they are from the folder a prior is published from.
_CARRIED = ("samples.png", "latents.png")
RECIPE_FILE = "recipe.yaml"
#: Card-only keys of an embedded recipe (not recipe keys: ``dwp-hub build`` would refuse them).
CARD_ONLY_RECIPE_KEYS = ("rebuild",)
_RECIPE_ORDER = {k: i for i, k in enumerate(("name", "version", "description", "status", "source", "harvest", "vae",
                                             "fit", "reference_elbo", "transfer"))}
#: Index entry fields shown by ``list``, and the types they must have.
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "kernel_size": (int,), "source": (str,), "created": (str,), "description": (str,),
    "heldout_elbo": (int, float, type(None)),
}


@dataclass(frozen=True)
class IndexProblem:
    """A malformed entry of ``index.json`` (skipped by listing and resolution)."""

    path: Path
    name: str
    version: str | None
    reason: str

    def __str__(self) -> str:
        what = self.name if self.version is None else f"{self.name}@{self.version}"
        return (f"{self.path}: the entry of {what[:80]!r} is malformed ({self.reason}). Re-publish it, or restore "
                f"{self.path.name} from a backup.")


@dataclass(frozen=True)
class Orphan:
    """A version folder on disk with no index entry (a publish that crashed before indexing it)."""

    folder: Path
    name: str
    version: str

    def __str__(self) -> str:
        return (f"{self.folder} is not in the index (a publish crashed before indexing it). Publish "
                f"{self.name}@{self.version} again to adopt or replace it, or delete the folder.")


def _stat_regular(path: Path) -> bool:
    """True for a regular file (symlinks followed), False if absent; IntegrityError for anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise IntegrityError(f"{path} is a dangling symlink. Re-download or re-publish this prior.",
                                 path=path) from None
        return False
    except OSError as err:
        reason = "a symlink loop" if err.errno == errno.ELOOP else (err.strerror or str(err))
        raise IntegrityError(f"{path} cannot be read ({reason}). Re-download or re-publish this prior.",
                             path=path) from err
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"{path} is not a regular file (mode {stat.filemode(st.st_mode)}); a prior folder holds "
                             "only regular files. Re-download or re-publish this prior.", path=path)
    return True


def _hash(path: Path) -> str:
    try:
        return sha256_file(path)
    except FileNotFoundError as err:
        raise IntegrityError(f"{path} is missing.", path=path) from err
    except NotRegularFileError as err:
        raise IntegrityError(f"{path} is {err.strerror}. Re-download or re-publish this prior.", path=path) from err
    except OSError as err:
        raise IntegrityError(f"Cannot read {path}: {err.strerror or err}.", path=path) from err


def folder_checksums(folder: Path) -> dict[str, str]:
    """sha256 of every known file in a version folder except ``checksums.json`` itself."""
    return {f: _hash(folder / f) for f in sorted(_ALLOWED - {CHECKSUMS_FILE}) if _stat_regular(folder / f)}


def _manifest(sums: Any, source: str, folder: Path, path: Path) -> dict[str, str]:
    """``sums`` if it maps file names to hex sha256 strings, else IntegrityError naming ``path``."""
    if not isinstance(sums, dict):
        raise IntegrityError(f"{source} of {folder} is not a mapping of file names to sha256 "
                             f"(got {type(sums).__name__}). Re-publish this prior.", path=path)
    for f, want in sums.items():
        if not isinstance(want, str) or not _HEX64.fullmatch(want):
            raise IntegrityError(f"{source} of {folder} records no valid sha256 for {f[:80]!r}. Re-publish this prior.",
                                 path=path)
    return sums


def verify_folder(folder: Path, expected: dict[str, str] | None = None, name: str | None = None,
                  version: str | None = None) -> PriorCard:
    """Check a version folder file by file; return its card. Raises :class:`IntegrityError`
    naming the first bad file (or :class:`CardError` for a malformed card)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IntegrityError(f"{folder} is not a prior folder.", path=folder)
    present = {f for f in sorted(_ALLOWED) if _stat_regular(folder / f)}  # refuses FIFOs, devices, loops, dirs
    for f in PRIOR_FILES:
        if f not in present:
            raise IntegrityError(f"{folder / f} is missing; the prior folder is incomplete. Re-download or re-publish it.",
                                 path=folder / f)
    extra = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in _ALLOWED)
    if extra:
        raise IntegrityError(
            f"Unexpected file(s) in {folder}: {', '.join(extra)[:300]}. A published prior holds only "
            f"{', '.join(sorted(_ALLOWED))}; remove the extra files.", path=folder / extra[0]
        )
    own = None
    if CHECKSUMS_FILE in present:
        own = _manifest(_read_json(folder / CHECKSUMS_FILE), CHECKSUMS_FILE, folder, folder / CHECKSUMS_FILE)
    if expected is None and own is None:
        raise IntegrityError(f"{folder} has no {CHECKSUMS_FILE} and no registry index entry; cannot verify it.",
                             path=folder / CHECKSUMS_FILE)
    if expected is not None:
        expected = _manifest(expected, "index", folder, folder.parent.parent / INDEX_FILE)
    hashes: dict[str, str] = {}  # each file is hashed once, then checked against both manifests
    for source, sums in (("index", expected), (CHECKSUMS_FILE, own)):
        if sums is None:
            continue
        listed = set(sums)
        missing_from_list = sorted(set(PRIOR_FILES) - listed)
        if missing_from_list:
            raise IntegrityError(f"{source} of {folder} does not list {', '.join(missing_from_list)}.",
                                 path=folder / missing_from_list[0])
        for f, want in sorted(sums.items()):
            path = folder / f
            if f not in _ALLOWED or f == CHECKSUMS_FILE:
                raise IntegrityError(f"{source} of {folder} lists an unexpected file {f[:80]!r}.",
                                     path=folder / CHECKSUMS_FILE if source == CHECKSUMS_FILE else None)
            if f not in present:
                raise IntegrityError(f"{path} is missing.", path=path)
            got = hashes[f] if f in hashes else hashes.setdefault(f, _hash(path))
            if got != want:
                raise IntegrityError(
                    f"{path} is modified: sha256 {got}, expected {want} ({source}). "
                    "Refusing to load; re-download or re-publish this prior.", path=path, expected=want, actual=got,
                )
        unlisted = sorted(f for f in present if f != CHECKSUMS_FILE and f not in sums)
        if unlisted:
            raise IntegrityError(f"{folder}: {', '.join(unlisted)} not covered by the {source}.", path=folder / unlisted[0])
    card = card_from_weights_file(folder / "model.safetensors")
    if (name is not None and card.name != name) or (version is not None and card.version != version):
        raise IntegrityError(
            f"{folder / 'model.safetensors'} holds the card of {card.spec}, not {name}@{version}: "
            "files were swapped between versions. Re-publish this version.", path=folder / "model.safetensors",
        )
    return card


def recipe_yaml(card: PriorCard) -> str | None:
    """The recipe embedded in ``card`` as the YAML that ``dwp-hub build`` reads back (None: the card has none)."""
    recipe = {k: v for k, v in card.recipe.items() if k not in CARD_ONLY_RECIPE_KEYS}
    if not recipe:
        return None
    import yaml

    # a recipe file's own order (cards store their JSON with sorted keys)
    recipe = {k: recipe[k] for k in sorted(recipe, key=lambda k: (_RECIPE_ORDER.get(k, len(_RECIPE_ORDER)), k))}

    header = f"# Recipe of {card.spec}. Rebuild it with: dwp-hub build THIS.yaml --to DIR\n"
    return header + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True, width=100)


def write_version(dest: str | Path, card: PriorCard, tensors: Mapping[str, torch.Tensor], *,
                  files_from: str | Path | None = None, recipe: str | None = None) -> dict[str, str]:
    """Write the files of one prior version into the folder ``dest``: the ONE writer of a version folder,
    used by ``fit`` (a draft), the local publish (a staging folder inside the registry) and the Hub
    publish (the temp folder its commit is made from).

    Writes ``model.safetensors`` (``tensors`` plus ``card`` in the header), ``samples.png`` and
    ``latents.png`` copied from ``files_from`` (already in ``dest`` when that is None), ``recipe.yaml``
    (``recipe``; else the one in ``files_from``; else rendered from ``card.recipe``; a stale one in
    ``dest`` is removed when there is none), ``README.md`` rendered from the card, and last
    ``checksums.json``. Every file goes through a temp file and a rename. The folder is then verified
    file by file, with the card's name and version.

    Returns:
        ``{file: sha256}`` of every file but ``checksums.json``, as recorded there.

    Raises:
        CardError: ``card.weights_sha256`` does not match ``tensors``.
        IntegrityError: a file is missing (``samples.png``) or the folder holds unexpected files.
    """
    from dwp_hub._render import render_readme
    from dwp_hub.model._io import write_weights

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    src = Path(files_from) if files_from is not None else None
    if src is not None and src.resolve() == dest.resolve():
        src = None
    write_weights(dest / "model.safetensors", dict(tensors), card)
    for f in _CARRIED:
        if src is not None and _stat_regular(src / f):
            with atomic_path(dest / f) as tmp:
                shutil.copyfile(src / f, tmp)
    if recipe is not None:
        atomic_write_text(dest / RECIPE_FILE, recipe)
    elif src is not None and _stat_regular(src / RECIPE_FILE):
        with atomic_path(dest / RECIPE_FILE) as tmp:
            shutil.copyfile(src / RECIPE_FILE, tmp)
    elif (rendered := recipe_yaml(card)) is not None:
        atomic_write_text(dest / RECIPE_FILE, rendered)
    else:
        (dest / RECIPE_FILE).unlink(missing_ok=True)
    atomic_write_text(dest / "README.md", render_readme(card))
    sums = folder_checksums(dest)
    atomic_write_text(dest / CHECKSUMS_FILE, json.dumps(sums, indent=2, sort_keys=True) + "\n")
    verify_folder(dest, None, card.name, card.version)
    return sums


@dataclass(frozen=True)
class PublishResult:
    """One published prior version, in a local registry or on the Hugging Face Hub: what
    :func:`dwp_hub.publish` returns for either target.

    Attributes:
        name, version: the published ``name@version``.
        target: ``"local"`` (a registry directory) or ``"hub"`` (a Hub repository).
        location: the registry directory, or ``hf-hub:ORG/REPO``.
        ref: a reference that loads exactly this version: ``NAME@X.Y.Z`` (with the registry on the
            search path, e.g. ``DWP_HUB_REGISTRY``) or ``hf-hub:ORG/REPO@vX.Y.Z``.
        path: the version folder (local only).
        url: the web page of the tagged version (Hub only).
        commit: the commit sha (Hub only).
        files: sha256 of every file of the version (``checksums.json`` itself excepted).
        weights_sha256: the card's ``weights_sha256``.

    ``str()`` gives the version folder (local) or ``ref`` (Hub); a local result is also an
    ``os.PathLike`` of its folder.
    """

    name: str
    version: str
    target: str
    location: str
    ref: str
    weights_sha256: str
    files: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    url: str | None = None
    commit: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else self.ref

    def __fspath__(self) -> str:
        if self.path is None:
            raise TypeError(f"{self.spec} was published to {self.location}; it has no local folder (use .ref).")
        return str(self.path)


def _read_json(path: Path) -> Any:
    try:
        with open_regular(path) as fh:
            raw = fh.read()
        return json.loads(raw.decode("utf-8"))
    except RecursionError as err:
        raise IntegrityError(f"{path} is not valid JSON (nested too deeply).", path=path) from err
    except NotRegularFileError as err:
        raise IntegrityError(f"{path} is {err.strerror}. Restore it from a backup or re-publish.", path=path) from err
    except OSError as err:
        raise IntegrityError(f"Cannot read {path}: {err.strerror or err}.", path=path) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, integer digit limit
        raise IntegrityError(f"{path} is not valid JSON ({str(err)[:200]}).", path=path) from err


class LocalRegistry:
    """A registry directory on disk (the embedded one, the user's, or any shared folder)."""

    def __init__(self, root: str | Path, label: str = "") -> None:
        self.root = Path(root)
        self.label = label or str(self.root)
        self._staging_locks: dict[Path, int] = {}

    def __repr__(self) -> str:
        return f"LocalRegistry({self.label!r})"

    # -- index ---------------------------------------------------------------------------
    def _scan(self) -> tuple[dict[str, dict[str, dict[str, Any]]], list[IndexProblem]]:
        path = self.root / INDEX_FILE
        if not os.path.lexists(path):
            return {}, []
        data = _read_json(path)
        if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA or not isinstance(data.get("priors"), dict):
            raise IntegrityError(f"{path} is not a dwp-hub registry index (schema {INDEX_SCHEMA}). Restore it from a "
                                 "backup, or re-publish the priors of this registry.", path=path)
        good: dict[str, dict[str, dict[str, Any]]] = {}
        bad: list[IndexProblem] = []
        for name, versions in data["priors"].items():
            try:
                validate_name(name)
            except DwpHubError:
                bad.append(IndexProblem(path, name, None, "not a valid prior name"))
                continue
            if not isinstance(versions, dict):
                bad.append(IndexProblem(path, name, None, f"a {type(versions).__name__}, not a mapping of versions"))
                continue
            for version, entry in versions.items():
                reason = self._entry_problem(version, entry)
                if reason:
                    bad.append(IndexProblem(path, name, version, reason))
                else:
                    good.setdefault(name, {})[version] = entry
        return good, bad

    @staticmethod
    def _entry_problem(version: str, entry: Any) -> str:
        try:
            Version.parse(version)
        except DwpHubError:
            return "not a MAJOR.MINOR.PATCH version"
        if not isinstance(entry, dict):
            return f"a {type(entry).__name__}, not a mapping"
        files = entry.get("files")
        if not isinstance(files, dict) or not files:
            return "'files' is not a mapping of file names to sha256"
        if not all(isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values()):
            return "'files' holds a value that is not a sha256"
        for key, types in _ENTRY_TYPES.items():
            v = entry.get(key)
            if key in entry and (not isinstance(v, types) or isinstance(v, bool)):
                return f"{key!r} is a {type(v).__name__}"
        if isinstance(entry.get("kernel_size"), int) and not 0 < entry["kernel_size"] < 1000:
            return "'kernel_size' out of range"
        if isinstance(entry.get("heldout_elbo"), int) and abs(entry["heldout_elbo"]) > 1e300:
            return "'heldout_elbo' out of range"
        return ""

    def index(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{name: {version: entry}}`` of every well-formed entry; empty if the registry does not exist yet.

        Raises :class:`IntegrityError` when ``index.json`` as a whole is unreadable or not an index.
        """
        return self._scan()[0]

    def index_problems(self) -> list[IndexProblem]:
        """Malformed entries of ``index.json`` (hidden from :meth:`index`)."""
        return self._scan()[1]

    def names(self) -> list[str]:
        return sorted(self.index())

    def versions(self, name: str) -> list[Version]:
        return sorted(Version.parse(v) for v in self.index().get(name, {}))

    def entry(self, name: str, version: Version) -> dict[str, Any]:
        good, bad = self._scan()
        try:
            return good[name][str(version)]
        except KeyError:
            for problem in bad:
                if problem.name == name and problem.version in (None, str(version)):
                    raise IntegrityError(str(problem), path=problem.path) from None
            raise PriorNotFoundError(f"{name}@{version} is not in {self.label}. Run 'dwp-hub list --all' to see the "
                                     "published versions.", name=name) from None

    def folder(self, name: str, version: Version) -> Path:
        return self.root / validate_name(name) / str(version)

    def orphans(self) -> list[Orphan]:
        """Version folders on disk that the index does not list (left by a crashed publish)."""
        if not self.root.is_dir():
            return []
        good, bad = self._scan()
        known = {(p.name, p.version) for p in bad} | {(p.name, None) for p in bad if p.version is None}
        out = []
        for name_dir in sorted(self.root.iterdir()):
            if name_dir.name.startswith(".") or not name_dir.is_dir() or name_dir.is_symlink():
                continue
            try:
                validate_name(name_dir.name)
            except DwpHubError:
                continue
            for vdir in sorted(name_dir.iterdir()):
                try:
                    Version.parse(vdir.name)
                except DwpHubError:
                    continue
                n, v = name_dir.name, vdir.name
                if vdir.is_dir() and v not in good.get(n, {}) and (n, v) not in known and (n, None) not in known:
                    out.append(Orphan(vdir, n, v))
        return out

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / ".lock", "a")  # noqa: SIM115 - closed below
        except OSError as err:
            raise IntegrityError(f"Cannot write to registry {self.root}: {err.strerror or err}.", path=self.root) from err
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_index(self, priors: dict[str, Any]) -> None:
        body = {"schema": INDEX_SCHEMA, "priors": {n: dict(sorted(v.items())) for n, v in sorted(priors.items())}}
        atomic_write_text(self.root / INDEX_FILE, json.dumps(body, indent=2, sort_keys=True) + "\n")

    def _raw_priors(self) -> dict[str, Any]:
        """The index's ``priors`` exactly as stored (malformed entries kept: a publish never drops them)."""
        path = self.root / INDEX_FILE
        if not os.path.lexists(path):
            return {}
        self._scan()  # raises if the index as a whole is broken
        return _read_json(path)["priors"]

    # -- load / verify -------------------------------------------------------------------
    def verify(self, name: str, version: Version) -> PriorCard:
        """Verify every file of ``name@version``; return its card."""
        entry = self.entry(name, version)
        return verify_folder(self.folder(name, version), entry["files"], name, str(version))

    # -- publish -------------------------------------------------------------------------
    @staticmethod
    def _entry(card: PriorCard, files: dict[str, str]) -> dict[str, Any]:
        return {
            "files": files,
            "kernel_size": card.arch.kernel_size,
            "source": card.source.domain,
            "created": card.created,
            "heldout_elbo": card.metrics.heldout_elbo,
            "description": card.description,
        }

    def _clean_crash_leftovers(self) -> None:
        """Remove staging folders and temp index files of crashed publishes (call under the lock)."""
        for tmp in self.root.glob(f".{INDEX_FILE}.*.tmp"):  # index writes happen only under the lock
            tmp.unlink(missing_ok=True)
        for lock in self.root.glob(f"{_STAGING}*.lock"):
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live publish holds it
                os.close(fd)
                continue
            try:
                shutil.rmtree(lock.with_suffix(""), ignore_errors=True)
                lock.unlink(missing_ok=True)
            finally:
                os.close(fd)
        now = time.time()
        for path in self.root.glob(f"{_STAGING}*"):
            if path.suffix == ".lock" or path.with_name(path.name + ".lock").exists():
                continue
            try:
                if path.is_dir() and now - path.stat().st_mtime > _LEGACY_STAGING_AGE_S:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue

    def clean_crash_leftovers(self) -> None:
        """Best effort, under the lock: remove staging folders and temp index files of crashed publishes.

        For paths that end before :meth:`add` (a refused re-publish after a crash); never raises
        (a read-only registry keeps its debris).
        """
        if not self.root.is_dir():
            return
        with contextlib.suppress(DwpHubError, OSError), self._locked():
            self._clean_crash_leftovers()

    def _take_orphan(self, dest: Path, card: PriorCard) -> bool:
        """Under the lock, deal with a version folder that exists but is not indexed.

        Returns True if it was adopted (it holds these very weights), False if it was removed.
        Raises :class:`PriorExistsError` if it is not a complete version folder of that name and
        version (not something a crashed publish leaves; a person must look at it).
        """
        try:
            found = verify_folder(dest, None, card.name, card.version)
        except DwpHubError as err:
            raise PriorExistsError(
                f"{dest} exists but is not indexed and is not a complete prior folder ({err}). Versions are "
                "immutable; delete that folder if it is debris, or publish a new version."
            ) from err
        if found.weights_sha256 == card.weights_sha256:
            return True
        trash = Path(tempfile.mkdtemp(prefix=f"{_STAGING}orphan-", dir=self.root))
        os.rename(dest, trash / "v")
        shutil.rmtree(trash, ignore_errors=True)
        return False

    def add(self, staging: Path, card: PriorCard) -> Path:
        """Move a complete staging folder into place as ``card.name@card.version`` and index it.

        The staging folder must sit on the same file system (it is renamed, not copied) and be complete
        (written by :func:`write_version`, or a verified copy of a version folder): it is verified against
        its ``checksums.json`` and its files are fsynced first. Raises :class:`PriorExistsError` if that version is indexed: versions are
        immutable. A complete but unindexed folder of that version (a crash between the rename and
        the index write) is adopted when it holds the same weights, else replaced.
        """
        version = Version.parse(card.version)
        dest = self.folder(card.name, version)
        with self._locked():
            self._clean_crash_leftovers()
            good, bad = self._scan()
            for problem in bad:
                if problem.name == card.name and problem.version in (None, str(version)):
                    raise IntegrityError(f"Cannot publish {card.spec}: {problem}", path=problem.path)
            if str(version) in good.get(card.name, {}):
                raise PriorExistsError(
                    f"{card.name}@{version} already exists in {self.label}; versions are immutable. "
                    "Publish a new version instead (e.g. bump the patch number)."
                )
            priors = self._raw_priors()
            adopted = os.path.lexists(dest) and self._take_orphan(dest, card)
            if adopted:  # verified complete by _take_orphan
                files = _read_json(dest / CHECKSUMS_FILE)
                card = card_from_weights_file(dest / "model.safetensors")
            else:
                verify_folder(staging, None, card.name, card.version)  # complete, as write_version left it
                files = _read_json(staging / CHECKSUMS_FILE)
                for f in staging.iterdir():
                    if f.is_file():
                        fsync_file(f)
                fsync_dir(staging)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.rename(staging, dest)
                fsync_dir(dest.parent)
                fsync_dir(self.root)
            priors.setdefault(card.name, {})[str(version)] = self._entry(card, files)
            self._write_index(priors)
        return dest

    def remove(self, name: str, version: Version | str) -> Path:
        """Remove ``name@version``: its index entry (well-formed or not) and its version folder, under
        the registry lock; return the folder it occupied.

        The index is rewritten first (atomically), then the folder is renamed into a hidden staging
        folder and deleted: readers see the version complete and indexed, or not at all. A crash in
        between leaves a complete orphan folder, which ``dwp-hub verify`` reports and a later publish
        of that version adopts or replaces. An unindexed (orphan) version folder is removed too.

        Raises :class:`PriorNotFoundError` if the registry holds no such version, and
        :class:`IntegrityError` for the embedded registry (shipped with the package: read-only).
        """
        from dwp_hub import constants

        validate_name(name)
        version = Version.parse(str(version))
        if self.root.resolve() == constants.embedded_registry().resolve():
            raise IntegrityError(
                f"{name}@{version} is in the registry shipped with dwp-hub ({self.root}), which is read-only; "
                "reinstall dwp-hub to repair it (pip install --force-reinstall dwp-hub).", path=self.root)
        dest = self.folder(name, version)
        with self._locked():
            self._clean_crash_leftovers()
            priors = self._raw_priors()
            versions = priors.get(name)
            indexed = isinstance(versions, dict) and str(version) in versions
            if not indexed and not (dest.is_dir() and not dest.is_symlink()):
                raise PriorNotFoundError(f"{name}@{version} is not in {self.label or self.root}. Run 'dwp-hub list "
                                         "--all' to see the published versions.", name=name)
            if indexed:
                del versions[str(version)]
                if not versions:
                    del priors[name]
                self._write_index(priors)
            if os.path.lexists(dest):
                trash = Path(tempfile.mkdtemp(prefix=f"{_STAGING}removed-", dir=self.root))
                os.rename(dest, trash / "v")
                fsync_dir(dest.parent)
                shutil.rmtree(trash, ignore_errors=True)
                try:
                    dest.parent.rmdir()  # the name folder, once its last version is gone
                except OSError:
                    pass
                fsync_dir(self.root)
        return dest

    def staging_dir(self) -> Path:
        """A fresh temp folder inside the registry (same file system, so the final move is a
        rename). Hidden, so readers never mistake it for a prior. A lock file beside it, held
        until :meth:`remove_staging`, tells a crashed publish's folder from a live one.

        Raises :class:`IntegrityError` if the registry directory cannot be written.
        """
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, lock = tempfile.mkstemp(prefix=_STAGING, suffix=".lock", dir=self.root)
        except OSError as err:
            raise IntegrityError(f"Cannot write to registry {self.root}: {err.strerror or err}.", path=self.root) from err
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = Path(lock[: -len(".lock")])
        path.mkdir()
        publishable_mode(path, directory=True)
        self._staging_locks[path] = fd
        return path

    def remove_staging(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        fd = self._staging_locks.pop(Path(path), None)
        lock = Path(str(path) + ".lock")
        if fd is not None:
            lock.unlink(missing_ok=True)
            os.close(fd)

    def card(self, name: str, version: Version) -> PriorCard:
        """The card of ``name@version`` read from its weights header (no torch, no hashing)."""
        return card_from_weights_file(self.folder(name, version) / "model.safetensors")
