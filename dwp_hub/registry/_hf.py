"""The Hugging Face Hub as a remote registry.

Layout on the Hub: **one model repository per prior name**. Each published version is **one
commit** whose files sit at the repository root (exactly the files of a local version folder:
``model.safetensors``, ``README.md``, ``samples.png``, optional ``latents.png`` and
``recipe.yaml``, and ``checksums.json``), tagged ``v<version>``. ``main`` points at the most
recently published version.

References are ``hf-hub:ORG/REPO`` (``main``) or ``hf-hub:ORG/REPO@REV`` where ``REV`` is a tag
(``v1.0.0``), a branch or a full commit sha. Downloads go through
:func:`huggingface_hub.snapshot_download`, so ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and the token sources (``HF_TOKEN``, ``hf auth login``) behave exactly as for
any Hugging Face library. ``DWP_HUB_OFFLINE`` / ``HF_HUB_OFFLINE`` are also read by dwp-hub at
call time: when set, only the local cache is used and no request is made.

Integrity, beyond the Hub's defaults, on every load (cache hits included):

1. each cached file is hashed and compared with the Hub's own record of it (the ETag that names
   its blob in the cache: git sha1, or sha256 for LFS files; else the cached tree listing);
2. :func:`dwp_hub._api.load_folder` checks every file against ``checksums.json`` and the
   weights against the card's ``weights_sha256``;
3. a ``v<version>`` tag must hold the card of that version.

A mismatch raises :class:`~dwp_hub.errors.IntegrityError` naming the file and both hashes; the
file is never re-downloaded silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import huggingface_hub
from huggingface_hub import HfApi, snapshot_download
from huggingface_hub import utils as hf_utils

try:  # huggingface_hub >= 1.x tells an incomplete cached snapshot apart
    from huggingface_hub.errors import IncompleteSnapshotError as _IncompleteSnapshot
except ImportError:  # pragma: no cover - older huggingface_hub
    _IncompleteSnapshot = None

from dwp_hub import constants
from dwp_hub._fs import sha256_file
from dwp_hub._version import __version__
from dwp_hub.card import PriorCard, card_from_weights_file
from dwp_hub.constants import CARD_METADATA_KEY, CHECKSUMS_FILE, OPTIONAL_PRIOR_FILES, PRIOR_FILES
from dwp_hub.errors import (
    AuthenticationError,
    DownloadInterruptedError,
    DwpHubError,
    HubError,
    IntegrityError,
    InvalidNameError,
    OfflineError,
    PriorExistsError,
    RemoteNotFoundError,
    RevisionNotFoundError,
)
from dwp_hub.registry._local import LocalRegistry, PublishResult, verify_folder, write_version
from dwp_hub.registry._names import HubRef, PriorRef, Version, parse_ref

if TYPE_CHECKING:
    import torch

__all__ = [
    "PullResult", "download_prior", "list_hub_versions", "publish_to_hub", "pull_prior", "push_prior",
    "verify_hub_prior",
]

#: Files of a prior version (the only ones downloaded from a repository).
_FILES = (*PRIOR_FILES, *OPTIONAL_PRIOR_FILES)
_TAG_RE = re.compile(r"v([0-9]+\.[0-9]+\.[0-9]+)", re.ASCII)
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LIBRARY = {"library_name": "dwp-hub", "library_version": __version__}
_LOGIN_HINT = "Log in with 'hf auth login' or set HF_TOKEN to a token with write access to the repository."


# -- references ----------------------------------------------------------------------------
def _hub_ref(spec: str | HubRef, *, allow_revision: bool = True) -> HubRef:
    ref = spec if isinstance(spec, HubRef) else parse_ref(spec)
    if not isinstance(ref, HubRef):
        raise InvalidNameError(f"{spec!r} is not a Hub reference; write 'hf-hub:ORG/REPO' (e.g. hf-hub:my-org/notmnist-7x7).")
    if ref.revision and not allow_revision:
        raise InvalidNameError(f"{spec!r}: give the repository without a revision, i.e. 'hf-hub:{ref.repo_id}'.")
    return ref


def _tag_version(tag: str | None) -> str | None:
    """``'1.2.0'`` for a version tag ``'v1.2.0'``, else None."""
    m = _TAG_RE.fullmatch(tag or "")
    if not m:
        return None
    try:
        return str(Version.parse(m[1]))
    except DwpHubError:
        return None


def _endpoint() -> str:
    return huggingface_hub.constants.ENDPOINT


def _cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir if cache_dir is not None else huggingface_hub.constants.HF_HUB_CACHE).expanduser()


def _storage_folder(repo_id: str, cache_dir: str | Path | None) -> Path:
    return _cache_root(cache_dir) / ("models--" + repo_id.replace("/", "--"))


# -- error translation -----------------------------------------------------------------------
def _is_transport_error(err: BaseException) -> bool:
    """A network-level failure from whichever HTTP stack huggingface_hub uses (httpx, requests...)."""
    root = type(err).__module__.split(".")[0]
    return root in {"httpx", "httpx2", "httpcore", "requests", "urllib3"} or isinstance(err, (ConnectionError, TimeoutError))


def _server_message(err: BaseException) -> str:
    response = getattr(err, "response", None)
    message = getattr(response, "headers", {}).get("X-Error-Message") if response is not None else None
    return f": {message}" if message else ""


def _translate(err: Exception, what: str, *, repo_id: str, action: str, offline: bool,
               cache_dir: str | Path | None = None, revision: str | None = None) -> DwpHubError | None:
    """Map a huggingface_hub / transport exception to a dwp-hub error (None: leave it alone).

    Messages never include the token; they say how to fix the problem.
    """
    where = _endpoint()
    cache = _cache_root(cache_dir)
    if isinstance(err, DwpHubError):
        return None
    if isinstance(err, hf_utils.LocalTokenNotFoundError):
        return AuthenticationError(f"No Hugging Face token found for {action} {what}. {_LOGIN_HINT}")
    if isinstance(err, hf_utils.RevisionNotFoundError):
        return RevisionNotFoundError(
            f"{what}: the repository exists on {where} but has no revision {revision or 'main'!r}. Versions are "
            f"tags 'v<version>'; run 'dwp-hub list hf-hub:{repo_id}' to see them."
        )
    if isinstance(err, hf_utils.RepositoryNotFoundError):
        return RemoteNotFoundError(
            f"No Hub repository {repo_id!r} at {where} (while {action} {what}). Check the name (and "
            "HF_ENDPOINT); if the repository is private, log in with 'hf auth login' or set HF_TOKEN to a token "
            "that can read it."
        )
    if isinstance(err, hf_utils.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status in (401, 403):
            return AuthenticationError(
                f"The Hub at {where} refused the token while {action} {what} (HTTP {status}{_server_message(err)}): "
                f"it is invalid, expired, or lacks the needed access. {_LOGIN_HINT}"
            )
        if status in (409, 412):
            return HubError(
                f"{what} changed on {where} while {action} it (HTTP {status}{_server_message(err)}), probably a "
                "concurrent publish. Nothing was tagged; run the command again."
            )
        return HubError(f"The Hub at {where} answered HTTP {status}{_server_message(err)} while {action} {what}. "
                        "Try again later.")
    if _IncompleteSnapshot is not None and isinstance(err, _IncompleteSnapshot):
        return OfflineError(
            f"The cached copy of {what} in {cache} is incomplete (an earlier download was interrupted) and the Hub "
            f"cannot be used{' (offline mode is on)' if offline else ''}. Load it once more with network access."
        )
    if isinstance(err, (hf_utils.LocalEntryNotFoundError, hf_utils.OfflineModeIsEnabled)):
        if offline:
            return OfflineError(
                f"{what} is not in the Hugging Face cache ({cache}) and dwp-hub is offline (HF_HUB_OFFLINE or "
                f"DWP_HUB_OFFLINE is set). Load it once with network access (or 'dwp-hub pull {what}' into a "
                "local registry), or unset the offline variable."
            )
        return OfflineError(
            f"Cannot reach the Hub at {where} and {what} is not in the Hugging Face cache ({cache}). Check the "
            "network and HF_ENDPOINT, or load a prior that is cached."
        )
    if _is_transport_error(err) or (isinstance(err, OSError) and "Consistency check failed" in str(err)):
        if "connect" in type(err).__name__.lower() or isinstance(err, ConnectionRefusedError):
            return OfflineError(f"Cannot reach the Hub at {where} while {action} {what} ({type(err).__name__}). "
                                "Check the network and HF_ENDPOINT.")
        if action == "downloading":
            return DownloadInterruptedError(
                f"The download of {what} from {where} broke off ({type(err).__name__}: {err}). Nothing partial was "
                "kept in the cache; run the command again."
            )
        return HubError(f"The connection to {where} broke off while {action} {what} ({type(err).__name__}). "
                        "Nothing was tagged; run the command again.")
    return None


def _reraise(err: Exception, what: str, **kwargs: Any) -> None:
    mapped = _translate(err, what, **kwargs)
    if mapped is not None:
        if isinstance(mapped, HubError):  # the fields a caller inspects (huggingface_hub's errors carry them too)
            mapped.repo_id, mapped.revision = kwargs["repo_id"], kwargs.get("revision")
        raise mapped from err


# -- integrity against the Hub's own record --------------------------------------------------
def _git_blob_sha1(data_path: Path) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % data_path.stat().st_size)
    with open(data_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _lfs_pointer_sha1(sha256: str, size: int) -> str:
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False).hexdigest()


def _cached_tree(repo_id: str, commit: str, cache_dir: str | Path | None) -> dict[str, str]:
    """``{path: git blob id}`` from huggingface_hub's cached tree listing, when it keeps one."""
    getter = getattr(huggingface_hub, "get_cached_repo_tree", None)
    if getter is None:
        return {}
    try:
        return {f.path: f.blob_id for f in getter(repo_id, revision=commit, cache_dir=cache_dir)}
    except Exception:  # noqa: BLE001 - the listing is optional; other layers still verify
        return {}


def _verify_hub_record(folder: Path, ref: HubRef, commit: str, cache_dir: str | Path | None) -> None:
    """Hash every cached file and compare it with what the Hub said it was."""
    tree = _cached_tree(ref.repo_id, commit, cache_dir)
    fix = (f"Delete {_storage_folder(ref.repo_id, cache_dir)} (or run 'hf cache delete') and load {ref} again to "
           "re-download it.")
    for name in _FILES:
        path = folder / name
        if not path.is_file():
            continue
        sha256, sha1 = sha256_file(path), _git_blob_sha1(path)
        # One hop only: the snapshot entry links to blobs/<etag>, which may itself link on into
        # huggingface_hub's shared (Xet-hash named) blob store.
        etag = os.path.basename(os.readlink(path)) if path.is_symlink() else ""
        if _HEX64.fullmatch(etag) and sha256 != etag:
            raise IntegrityError(f"{path} (cached from {ref}, commit {commit}) is modified: sha256 {sha256}, "
                                 f"expected {etag} (the Hub's ETag). Refusing to load. {fix}")
        if _HEX40.fullmatch(etag) and sha1 != etag:
            raise IntegrityError(f"{path} (cached from {ref}, commit {commit}) is modified: git sha1 {sha1}, "
                                 f"expected {etag} (the Hub's ETag). Refusing to load. {fix}")
        blob_id = tree.get(name)
        pointer = _lfs_pointer_sha1(sha256, path.stat().st_size)
        if blob_id and blob_id not in (sha1, pointer):
            raise IntegrityError(f"{path} (cached from {ref}, commit {commit}) is modified: git blob id {sha1} "
                                 f"(as an LFS file {pointer}), expected {blob_id} (the Hub's tree listing). "
                                 f"Refusing to load. {fix}")


def _check_tag_matches_card(folder: Path, ref: HubRef) -> None:
    version = _tag_version(ref.revision)
    if version is None or not (folder / "model.safetensors").is_file():
        return
    card = card_from_weights_file(folder / "model.safetensors")
    if card.version != version:
        raise IntegrityError(
            f"{ref}: tag {ref.revision} holds the card of {card.spec}, not version {version}. The tag was moved "
            "or mis-published; ask the repository owner to fix it, or pin a commit sha."
        )


# -- download --------------------------------------------------------------------------------
def download_prior(ref: HubRef, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """Fetch a prior version from the Hub (or the Hugging Face cache) and check it against the Hub's record.

    Args:
        ref: ``hf-hub:ORG/REPO[@REV]`` reference (``REV``: tag ``vX.Y.Z``, branch or commit sha).
        cache_dir: Hugging Face cache directory (default ``HF_HUB_CACHE``).

    Returns:
        The local snapshot folder and the resolved commit sha.

    Raises:
        RemoteNotFoundError: no such repository (:class:`RevisionNotFoundError`: no such revision).
        OfflineError: offline (or the Hub is unreachable) and the prior is not fully cached.
        DownloadInterruptedError: the connection dropped mid-download (no partial file is kept).
        AuthenticationError: the Hub refused the token.
        IntegrityError: a cached file differs from the Hub's record, or a version tag holds another version.
    """
    ref = _hub_ref(ref)
    offline = constants.offline()
    try:
        folder = Path(snapshot_download(
            ref.repo_id, revision=ref.revision, cache_dir=cache_dir, local_files_only=offline,
            allow_patterns=list(_FILES), **_LIBRARY,
        ))
    except Exception as err:
        _reraise(err, str(ref), repo_id=ref.repo_id, action="downloading", offline=offline, cache_dir=cache_dir,
                 revision=ref.revision)
        raise
    commit = folder.name
    _verify_hub_record(folder, ref, commit, cache_dir)
    _check_tag_matches_card(folder, ref)
    return folder, commit


def verify_hub_prior(spec: str | HubRef, cache_dir: str | Path | None = None) -> tuple[Path, str, PriorCard]:
    """Download (or find cached) and fully verify a Hub prior without building it.

    Checks the Hub's record, ``checksums.json``, and the weights against the card.

    Returns:
        The snapshot folder, the resolved commit sha, and the card.
    """
    from dwp_hub.model._io import read_weights

    ref = _hub_ref(spec)
    folder, commit = download_prior(ref, cache_dir)
    verify_folder(folder)
    card, _ = read_weights(folder / "model.safetensors")
    return folder, commit, card


# -- listing ---------------------------------------------------------------------------------
def _cached_version_tags(repo_id: str) -> list[str]:
    refs = _storage_folder(repo_id, None) / "refs"
    return sorted((p.name for p in refs.iterdir() if _tag_version(p.name)), reverse=True) if refs.is_dir() else []


def list_hub_versions(repo: str) -> list[dict[str, str]]:
    """Published versions of a Hub repository (its ``v<version>`` tags), newest first.

    Args:
        repo: ``hf-hub:ORG/REPO``.

    Returns:
        ``[{"version": "1.1.0", "tag": "v1.1.0", "commit": "<sha>"}, ...]``.
    """
    ref = _hub_ref(repo, allow_revision=False)
    if constants.offline():
        cached = _cached_version_tags(ref.repo_id)
        raise OfflineError(
            f"Listing the versions of {ref} needs the Hub, and dwp-hub is offline (HF_HUB_OFFLINE or "
            f"DWP_HUB_OFFLINE). Versions in the local cache: {', '.join(cached) or 'none'}.", repo_id=ref.repo_id
        )
    try:
        refs = HfApi(**_LIBRARY).list_repo_refs(ref.repo_id)
    except Exception as err:
        _reraise(err, str(ref), repo_id=ref.repo_id, action="listing", offline=False)
        raise
    rows = [{"version": v, "tag": t.name, "commit": t.target_commit}
            for t in refs.tags if (v := _tag_version(t.name)) is not None]
    return sorted(rows, key=lambda r: Version.parse(r["version"]), reverse=True)


# -- publish ---------------------------------------------------------------------------------
def _prior_name_at(api: HfApi, repo_id: str, commit: str) -> str | None:
    """Name in the card of the prior at ``commit`` (None if that commit holds no dwp-hub prior)."""
    try:
        meta = api.parse_safetensors_file_metadata(repo_id, "model.safetensors", revision=commit)
    except hf_utils.EntryNotFoundError:
        return None
    except Exception as err:
        if isinstance(err, hf_utils.HfHubHTTPError) or _is_transport_error(err):
            raise
        return None
    try:
        return json.loads(meta.metadata.get(CARD_METADATA_KEY, "{}")).get("name") or None
    except (json.JSONDecodeError, AttributeError):
        return None


def publish_to_hub(path: Path, card: PriorCard, tensors: dict[str, torch.Tensor], to: str, *,
                   recipe: str | None = None) -> PublishResult:
    """Publish one prior version to a Hub repository: one commit at the repository root, tagged ``v<version>``.

    The version folder is written by :func:`~dwp_hub.registry._local.write_version` (as for a local
    publish) into a temp folder, and its files are committed. The repository is created if needed.
    Files of the previous version that this one lacks (e.g. an old ``latents.png``) are deleted in
    the same commit, so the root always holds exactly one version. The commit is made against the
    ``main`` head seen when checking the tags, so a concurrent publish makes this one fail instead of
    mixing files.

    Args:
        path: folder holding ``samples.png`` and optionally ``latents.png`` / ``recipe.yaml``.
        card: the card to publish (already stamped with name and version).
        tensors: the VAE tensors (must match ``card.weights_sha256``).
        to: ``hf-hub:ORG/REPO``.
        recipe: the text of ``recipe.yaml`` (default: the one in ``path``, else rendered from the card).

    Returns:
        The :class:`~dwp_hub.registry.PublishResult`; its ``ref``, ``hf-hub:ORG/REPO@v<version>``, loads
        exactly this version.

    Raises:
        PriorExistsError: the tag ``v<version>`` already exists (versions are immutable).
        InvalidNameError: the repository holds another prior name (one repository per prior).
        AuthenticationError: no token, or the Hub refused it.
        OfflineError: offline mode is on or the Hub cannot be reached.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ref = _hub_ref(to, allow_revision=False)
    what = f"{card.spec} to {ref}"
    if constants.offline():
        raise OfflineError(f"Cannot publish {what}: dwp-hub is offline (HF_HUB_OFFLINE or DWP_HUB_OFFLINE is set).",
                           repo_id=ref.repo_id)
    try:
        if huggingface_hub.get_token() is None:
            raise AuthenticationError(f"No Hugging Face token found for publishing {what}. {_LOGIN_HINT}",
                                      repo_id=ref.repo_id)
    except DwpHubError:
        raise
    except Exception as err:
        raise AuthenticationError(f"Could not obtain a Hugging Face token ({type(err).__name__}). {_LOGIN_HINT}",
                                  repo_id=ref.repo_id) from err
    tag = f"v{card.version}"
    api = HfApi(**_LIBRARY)
    with tempfile.TemporaryDirectory(prefix="dwp-hub-publish-") as tmp:
        staging = Path(tmp)
        sums = write_version(staging, card, tensors, files_from=path, recipe=recipe)
        files = sorted([*sums, CHECKSUMS_FILE])
        try:
            api.create_repo(ref.repo_id, exist_ok=True)
            refs = api.list_repo_refs(ref.repo_id)
            head = next((b.target_commit for b in refs.branches if b.name == "main"), None)
            held = _prior_name_at(api, ref.repo_id, head) if head is not None else None
            if held is not None and held != card.name:
                raise InvalidNameError(
                    f"{ref} holds the prior {held!r}; publish {card.name!r} to its own repository "
                    f"(one repository per prior name), e.g. hf-hub:{ref.repo_id.split('/')[0]}/{card.name}."
                )
            if any(t.name == tag for t in refs.tags):
                raise PriorExistsError(
                    f"{ref} already has version {card.version} (tag {tag}); versions are immutable. "
                    "Publish a new version instead (e.g. bump the patch number)."
                )
            stale: list[str] = []
            if head is not None:
                present = set(api.list_repo_files(ref.repo_id, revision=head))
                stale = sorted((present & set(_FILES)) - set(files))
            operations: list[Any] = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(staging / f)) for f in files]
            operations += [CommitOperationDelete(path_in_repo=f) for f in stale]
            info = api.create_commit(
                ref.repo_id, operations, commit_message=f"Publish {card.spec}",
                commit_description=f"{card.description}\n\nweights sha256: {card.weights_sha256}",
                parent_commit=head,
            )
            try:
                api.create_tag(ref.repo_id, tag=tag, revision=info.oid, tag_message=f"{card.spec}")
            except hf_utils.HfHubHTTPError as err:
                if getattr(err.response, "status_code", None) == 409:
                    raise PriorExistsError(
                        f"{ref}: tag {tag} was created by someone else while publishing; commit {info.oid} is on "
                        "main but untagged. Check 'dwp-hub list' and publish a new version."
                    ) from err
                raise
        except DwpHubError:
            raise
        except Exception as err:
            _reraise(err, what, repo_id=ref.repo_id, action="publishing", offline=False)
            raise
    return PublishResult(card.name, card.version, "hub", str(ref), f"hf-hub:{ref.repo_id}@{tag}", card.weights_sha256,
                         files=sums, url=f"{_endpoint()}/{ref.repo_id}/tree/{tag}", commit=info.oid)


# -- mirroring -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PullResult:
    """One version copied (or found already present) by :func:`pull_prior`."""

    spec: str
    folder: Path
    added: bool
    source: str


def _pull_one(ref: HubRef, registry: LocalRegistry) -> PullResult:
    folder, commit, card = verify_hub_prior(ref)
    version = Version.parse(card.version)
    source = f"{ref} (commit {commit})"
    if version in registry.versions(card.name):
        theirs = json.loads((folder / CHECKSUMS_FILE).read_text("utf-8"))
        if registry.entry(card.name, version).get("files") == theirs:
            return PullResult(card.spec, registry.folder(card.name, version), False, source)
        raise PriorExistsError(
            f"{card.spec} already exists in {registry.label} with different files than {source}; versions are "
            "immutable. Pull into another registry directory, or publish the Hub copy under a new version."
        )
    staging = registry.staging_dir()
    try:
        for f in _FILES:
            if (folder / f).is_file():
                shutil.copyfile(folder / f, staging / f)  # follows the cache's symlinks
        dest = registry.add(staging, card)
    finally:
        registry.remove_staging(staging)
    registry.verify(card.name, version)
    return PullResult(card.spec, dest, True, source)


def pull_prior(spec: str, to: str | Path | None = None, *, all_versions: bool = False) -> list[PullResult]:
    """Copy a Hub prior into a local registry directory, keeping its name and version.

    Args:
        spec: ``hf-hub:ORG/REPO[@REV]``.
        to: registry directory (default: the user registry).
        all_versions: copy every ``v<version>`` tag of the repository (oldest first).

    Raises:
        PriorExistsError: the registry holds that version with different files.
    """
    ref = _hub_ref(spec, allow_revision=not all_versions)
    registry = LocalRegistry(to if to is not None else constants.user_registry())
    refs: Iterable[HubRef] = [ref]
    if all_versions:
        refs = [HubRef(ref.repo_id, row["tag"]) for row in reversed(list_hub_versions(str(ref)))]
    return [_pull_one(r, registry) for r in refs]


def push_prior(spec: str, to: str, *, all_versions: bool = False) -> list[tuple[str, str | None]]:
    """Publish local prior versions to a Hub repository (the reverse of :func:`pull_prior`).

    Args:
        spec: ``NAME`` (newest local version), ``NAME@X.Y.Z``; with ``all_versions``, every local
            version of ``NAME`` not yet on the Hub, oldest first.
        to: ``hf-hub:ORG/REPO``.

    Returns:
        ``[(spec, hub reference or None if the version was already on the Hub), ...]``.
    """
    from dwp_hub.model._io import read_weights
    from dwp_hub.registry import registries, resolve

    ref = parse_ref(spec)
    if not isinstance(ref, PriorRef):
        raise InvalidNameError(f"{spec!r}: push takes a local prior (NAME or NAME@X.Y.Z); to copy from the Hub use "
                               "'dwp-hub pull'.")
    _hub_ref(to, allow_revision=False)
    if all_versions:
        versions = sorted({v for reg in registries() for v in reg.versions(ref.name)})
        if not versions:
            resolve(ref)  # raises PriorNotFoundError with close matches
        try:
            existing = {row["version"] for row in list_hub_versions(to)}
        except RevisionNotFoundError:
            raise
        except RemoteNotFoundError:  # the repository is created by the first publish
            existing = set()
        targets = [PriorRef(ref.name, v) for v in versions]
    else:
        existing = set()
        targets = [ref]
    out: list[tuple[str, str | None]] = []
    for target in targets:
        resolved = resolve(target)
        if str(resolved.version) in existing:
            out.append((resolved.spec, None))
            continue
        resolved.registry.verify(resolved.name, resolved.version)
        card, tensors = read_weights(resolved.folder / "model.safetensors")
        out.append((resolved.spec, publish_to_hub(resolved.folder, card, tensors, to).ref))
    return out
