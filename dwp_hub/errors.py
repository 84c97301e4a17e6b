"""Every exception dwp-hub raises.

All derive from :class:`DwpHubError`; each also inherits the built-in a caller would naturally
catch (``LookupError``, ``ValueError``, ``OSError`` ...). Messages say how to fix the problem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Remedy:
    """An argument setting that avoids an error, e.g. ``Remedy("resume", False)``.

    Python callers read it as ``resume=False`` (``str()``); the CLI shows the flag that sets it
    (``--no-resume``), from its table in ``dwp_hub/cli/_errors.py``.
    """

    argument: str
    value: Any

    def __str__(self) -> str:
        return f"{self.argument}={self.value!r}"


class DwpHubError(Exception):
    """Base class of every dwp-hub error.

    Attributes:
        reason: the message without the sentence that offers a remedy.
        remedy: an argument setting that avoids the error (:class:`Remedy`), when there is one.
        hint: that sentence, with ``{remedy}`` where the remedy goes (``str(err)`` fills in the Python
            spelling, ``resume=False``; the CLI its flag, ``--no-resume``).
    """

    def __init__(self, *args: Any, remedy: Remedy | None = None, hint: str = "") -> None:
        reason = str(args[0]) if args else ""
        if remedy is not None:
            if "{remedy}" not in hint:
                hint = f"{hint} Pass {{remedy}}.".strip()
            args = (f"{reason.rstrip()} {hint.format(remedy=remedy)}".strip(), *args[1:])
        super().__init__(*args)
        self.reason, self.remedy, self.hint = reason, remedy, hint

    def message_with(self, remedy_text: str | None) -> str:
        """The message with the remedy spelled ``remedy_text`` (how a front end names the argument);
        ``str(self)`` when there is no remedy or no such spelling."""
        if self.remedy is None or not remedy_text:
            return str(self)
        return f"{self.reason.rstrip()} {self.hint.format(remedy=remedy_text)}".strip()


class InvalidNameError(DwpHubError, ValueError):
    """A prior name or ``name@version`` spec is malformed."""


class InvalidVersionError(DwpHubError, ValueError):
    """A version string is not semantic versioning (``MAJOR.MINOR.PATCH``)."""


class PriorNotFoundError(DwpHubError, LookupError):
    """No registry holds a prior of that name.

    Attributes:
        name: the name asked for (None when not known).
        candidates: close matches the user may have meant.
    """

    def __init__(self, message: str, *, name: str | None = None, candidates: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name, self.candidates = name, tuple(candidates)


class VersionNotFoundError(PriorNotFoundError):
    """The prior exists but not at the requested version."""


class IntegrityError(DwpHubError, OSError):
    """A prior file is missing, unexpected, malformed, or does not match its recorded sha256.

    Attributes:
        path: the offending file or folder (None when not known).
        expected: the recorded hash (or other expected value), when there is one.
        actual: what was found instead.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, expected: str | None = None,
                 actual: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.expected, self.actual = expected, actual


class CardError(DwpHubError, ValueError):
    """A prior card is malformed or inconsistent with its weights.

    Attributes:
        path: the file holding the card (None for a card built in memory).
        field: the dotted card field at fault (e.g. ``card.arch.hidden``), when known.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.field = field


class PriorExistsError(DwpHubError, FileExistsError):
    """Publishing would overwrite an existing (immutable) version."""


class DataNotFoundError(DwpHubError, FileNotFoundError):
    """A dataset or checkpoint is not under the data root."""


class DataIntegrityError(DwpHubError, OSError):
    """A data file does not match its published checksum or is corrupt."""


class CheckpointError(DwpHubError, ValueError):
    """A checkpoint cannot be read or does not fit: a source network's (no usable conv kernels) or a VI
    run's (written by another run: ``remedy`` is ``resume=False``, the CLI's ``--no-resume``)."""


class UnsupportedLayerError(DwpHubError, ValueError):
    """A layer cannot take kernels from a prior (grouped, dilated, non-square, wrong size)."""


class TrainingError(DwpHubError, RuntimeError):
    """Training diverged (NaN/inf loss) or cannot start."""


class SourceDivergedError(TrainingError):
    """A source network's loss became NaN or inf; ``index`` and ``epoch`` say which net and when."""

    def __init__(self, message: str, *, index: int, epoch: int) -> None:
        super().__init__(message)
        self.index, self.epoch = index, epoch


class RecipeError(DwpHubError, ValueError):
    """A recipe file is malformed.

    Attributes:
        path: the recipe file (None for a mapping parsed in memory).
        key: the dotted recipe key at fault (e.g. ``fit.lr``), when known.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.key = key


class OutputPathError(DwpHubError, ValueError):
    """An output path (``--out``) cannot be written safely: it is a directory, a FIFO, a device,
    under ``/proc``-like file systems, or empty.

    Attributes:
        path: the refused path.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)


class HubError(DwpHubError, OSError):
    """A Hugging Face Hub operation failed.

    Attributes:
        repo_id: the Hub repository (``ORG/REPO``) of the operation, when it had one.
        revision: the revision it asked for (a ``v<version>`` tag, branch or commit), when it asked for one.
    """

    def __init__(self, *args: Any, repo_id: str | None = None, revision: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.repo_id, self.revision = repo_id, revision


class RemoteNotFoundError(HubError, LookupError):
    """The Hub repository or revision does not exist."""


class RevisionNotFoundError(RemoteNotFoundError):
    """The Hub repository exists but has no such revision (tag, branch or commit sha)."""


class OfflineError(HubError, ConnectionError):
    """A download is needed but dwp-hub is offline or the network is unreachable."""


class DownloadInterruptedError(HubError, ConnectionError):
    """A download from the Hub broke off part-way; nothing partial was kept in the cache."""


class AuthenticationError(HubError, PermissionError):
    """The Hub refused the token (missing, invalid, or lacking write access)."""


class ConfigError(DwpHubError, ValueError):
    """An argument or configuration value is invalid (unknown architecture, bad width list, ...)."""
