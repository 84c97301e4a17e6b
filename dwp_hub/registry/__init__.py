"""Registries and name resolution.

Search order for a plain ``name`` / ``name@version``:

1. directories in ``DWP_HUB_REGISTRY`` (``os.pathsep``-separated), in order;
2. the user registry ``<DWP_HUB_HOME>/priors``;
3. the embedded registry shipped with the package.

``name`` resolves to the newest version found in any registry (on a tie, the earlier registry
wins); ``name@X.Y.Z`` pins a version. ``hf-hub:ORG/REPO[@REV]`` goes to the Hugging Face Hub.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from dwp_hub import constants
from dwp_hub.errors import IntegrityError, PriorNotFoundError, VersionNotFoundError
from dwp_hub.registry._local import IndexProblem, LocalRegistry, Orphan, PublishResult, verify_folder, write_version
from dwp_hub.registry._names import HubRef, PriorRef, Version, parse_ref, validate_name

__all__ = [
    "HubRef", "IndexProblem", "LocalRegistry", "Orphan", "PriorRef", "PublishResult", "Resolved", "Version", "all_names",
    "parse_ref", "registries", "resolve", "validate_name", "verify_folder", "write_version",
]


def registries() -> list[LocalRegistry]:
    """Local registries in search order."""
    out = [LocalRegistry(p, f"DWP_HUB_REGISTRY:{p}") for p in constants.extra_registries()]
    out.append(LocalRegistry(constants.user_registry(), "user"))
    out.append(LocalRegistry(constants.embedded_registry(), "embedded"))
    return out


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one version in one local registry."""

    registry: LocalRegistry
    name: str
    version: Version

    @property
    def folder(self) -> Path:
        return self.registry.folder(self.name, self.version)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def all_names() -> list[str]:
    """Every prior name known to any local registry."""
    return sorted({n for r in registries() for n in r.names()})


def _refuse_malformed(ref: PriorRef, best: Resolved | None, regs: list[LocalRegistry]) -> None:
    """Raise if a malformed index entry is the version ``ref`` asks for (pinned, or newer than ``best``):
    never a silent fall-back to an older version. Entries whose version key is not a version at all
    cannot be asked for and are ignored here (``list`` and ``verify`` report them)."""
    for reg in regs:
        for problem in reg.index_problems():
            if problem.name != ref.name:
                continue
            try:
                v = Version.parse(problem.version) if problem.version is not None else None
            except ValueError:
                continue
            if v is None:  # the whole entry of this name is broken
                wanted = best is None
            elif ref.version is not None:
                wanted = v == ref.version
            else:
                wanted = best is None or v > best.version
            if wanted:
                raise IntegrityError(str(problem), path=problem.path)


def resolve(ref: PriorRef | str, regs: list[LocalRegistry] | None = None) -> Resolved:
    """Find the registry and version for ``ref``; raise with the closest names if unknown."""
    if isinstance(ref, str):
        parsed = parse_ref(ref)
        if isinstance(parsed, HubRef):
            raise PriorNotFoundError(f"{ref} is a Hub reference; load it with dwp_hub.load().", name=ref)
        ref = parsed
    regs = registries() if regs is None else regs
    best: Resolved | None = None
    for reg in regs:
        for v in reg.versions(ref.name):
            if ref.version is not None and v != ref.version:
                continue
            if best is None or v > best.version:
                best = Resolved(reg, ref.name, v)
    _refuse_malformed(ref, best, regs)
    if best is not None:
        return best
    known = sorted({n for r in regs for n in r.names()})
    if ref.name in known:
        versions = sorted({str(v) for r in regs for v in r.versions(ref.name)})
        raise VersionNotFoundError(
            f"{ref.name} has no version {ref.version}; available: {', '.join(versions)}. "
            f"Use '{ref.name}' for the newest.", name=ref.name, candidates=[f"{ref.name}@{v}" for v in versions],
        )
    close = difflib.get_close_matches(ref.name, known, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise PriorNotFoundError(
        f"No prior named {ref.name!r} in {', '.join(r.label for r in regs)}.{hint} "
        f"Known priors: {', '.join(known) or 'none'}. Run 'dwp-hub list' to see them all.",
        name=ref.name, candidates=close,
    )
