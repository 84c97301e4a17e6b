"""Parsing of prior references: ``name``, ``name@X.Y.Z``, ``hf-hub:ORG/REPO[@REV]``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from dwp_hub.errors import InvalidNameError, InvalidVersionError

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]|\.(?!\.)){0,62}[a-z0-9]$|^[a-z0-9]$")
# ASCII digits only: ``\d`` would accept any Unicode digit ("1\u0662.0.0" read as 12.0.0).
_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})", re.ASCII)
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")
_REV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,127}$")
HF_PREFIX = "hf-hub:"


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version ``MAJOR.MINOR.PATCH`` (no pre-release tags), ordered numerically."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        if not isinstance(text, str):
            raise InvalidVersionError(f"A version must be a string, got {type(text).__name__}.")
        m = _VERSION_RE.fullmatch(text)
        if not m:
            raise InvalidVersionError(
                f"{text[:40]!r} is not a version; use MAJOR.MINOR.PATCH with plain ASCII numbers, e.g. '1.0.0'."
            )
        return cls(int(m[1]), int(m[2]), int(m[3]))

    def __lt__(self, other: Version) -> bool:
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid prior name, else raise :class:`InvalidNameError`.

    Names are 1-64 characters of lowercase letters, digits, ``-``, ``_`` and ``.``, start and end
    alphanumeric, and never contain ``..`` or path separators; so a name is always a single safe
    path component.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"A prior name must be a string, got {type(name).__name__}.")
    if "/" in name or "\\" in name or ".." in name or "\x00" in name:
        raise InvalidNameError(
            f"{name!r} is not a prior name: path separators and '..' are not allowed. "
            "For a Hub repository write 'hf-hub:ORG/REPO'."
        )
    if not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"{name!r} is not a prior name; use lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (e.g. 'notmnist-7x7')."
        )
    return name


@dataclass(frozen=True)
class PriorRef:
    """A reference to a prior in a local registry: ``name`` or ``name@version``."""

    name: str
    version: Version | None = None

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class HubRef:
    """A reference to a prior repository on the Hugging Face Hub: ``hf-hub:ORG/REPO[@REV]``."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{HF_PREFIX}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def _hub_valid(repo_id: str) -> bool:
    """Whether huggingface_hub's own validator accepts ``repo_id`` (so it never fails later, inside the Hub client)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def parse_ref(spec: str) -> PriorRef | HubRef:
    """Parse a user-supplied reference; raises a clean :class:`InvalidNameError` on bad input."""
    if not isinstance(spec, str):
        raise InvalidNameError(f"A prior reference must be a string, got {type(spec).__name__}.")
    spec = spec.strip()
    if spec.startswith(HF_PREFIX):
        body = spec[len(HF_PREFIX):]
        repo, _, rev = body.partition("@")
        if not _REPO_RE.fullmatch(repo) or ".." in repo or not _hub_valid(repo):
            raise InvalidNameError(f"{spec[:120]!r}: write 'hf-hub:ORG/REPO' or 'hf-hub:ORG/REPO@REVISION' (letters, "
                                   "digits, '-', '_', '.'; no '--', '..' or trailing '.git').")
        if rev and (not _REV_RE.fullmatch(rev) or ".." in rev):
            raise InvalidNameError(f"{spec[:120]!r}: {rev[:80]!r} is not a valid revision (tag, branch or commit sha).")
        return HubRef(repo, rev or None)
    name, sep, version = spec.partition("@")
    validate_name(name)
    if sep:
        try:
            return PriorRef(name, Version.parse(version))
        except InvalidVersionError as err:
            raise InvalidVersionError(f"In {spec!r}: {err}") from err
    return PriorRef(name)
