"""Every exception dwp-hub raises.

All derive from :class:`DwpHubError`; each also inherits the built-in a caller would naturally
catch (``LookupError``, ``ValueError``, ``OSError`` ...). Messages say how to fix the problem.
"""

from __future__ import annotations


class DwpHubError(Exception):
    """Base class of every dwp-hub error."""


class InvalidNameError(DwpHubError, ValueError):
    """A prior name or ``name@version`` spec is malformed."""


class InvalidVersionError(DwpHubError, ValueError):
    """A version string is not semantic versioning (``MAJOR.MINOR.PATCH``)."""


class PriorNotFoundError(DwpHubError, LookupError):
    """No registry holds a prior of that name."""


class VersionNotFoundError(PriorNotFoundError):
    """The prior exists but not at the requested version."""


class IntegrityError(DwpHubError, OSError):
    """A prior file is missing, unexpected, or does not match its recorded sha256."""


class CardError(DwpHubError, ValueError):
    """A prior card is malformed or inconsistent with its weights."""


class PriorExistsError(DwpHubError, FileExistsError):
    """Publishing would overwrite an existing (immutable) version."""


class DataNotFoundError(DwpHubError, FileNotFoundError):
    """A dataset or checkpoint is not under the data root."""


class DataIntegrityError(DwpHubError, OSError):
    """A data file does not match its published checksum or is corrupt."""


class CheckpointError(DwpHubError, ValueError):
    """A source checkpoint cannot be read, or holds no usable conv kernels."""


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
    """A recipe file is malformed."""


class HubError(DwpHubError, OSError):
    """A Hugging Face Hub operation failed."""


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
