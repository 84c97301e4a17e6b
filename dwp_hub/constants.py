"""Every environment variable dwp-hub reads, in one place.

Precedence for the dwp-hub home (cache, user registry, data):

1. ``DWP_HUB_HOME``
2. ``$XDG_CACHE_HOME/dwp-hub``
3. ``~/.cache/dwp-hub``

Other variables:

``DWP_HUB_DATA``
    Data root holding ``mnist/``, ``notmnist/``, ``checkpoints/`` (default ``$DWP_HUB_HOME/data``).
``DWP_HUB_REGISTRY``
    Extra local registries, separated by ``os.pathsep``; searched after the user registry and
    before the embedded one (see :mod:`dwp_hub.registry`).
``DWP_HUB_OFFLINE`` / ``HF_HUB_OFFLINE``
    Never touch the network (downloads raise :class:`~dwp_hub.errors.OfflineError`).
``DWP_HUB_DEBUG``
    Show full tracebacks in the CLI (same as ``--debug``).
``DWP_HUB_MAX_CHECKPOINT_MB``
    Largest uncompressed size of a third-party checkpoint that ``harvest`` reads (default 4096 MiB);
    larger ones, and zip bombs, are refused before they are unpacked.

Hugging Face variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``, ``HF_TOKEN``) are read by
huggingface_hub itself; dwp-hub never reads or logs the token.

Values are read when a function is called, not at import time, so tests and users can change
the environment between calls.
"""

from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}

#: Version of the card schema written into every ``model.safetensors`` header.
CARD_SCHEMA_VERSION = 1
#: Key of the card JSON inside the safetensors metadata header.
CARD_METADATA_KEY = "dwp_hub.card"
#: Key of the schema version inside the safetensors metadata header.
SCHEMA_METADATA_KEY = "dwp_hub.schema"
#: Files a prior version folder must contain.
PRIOR_FILES = ("model.safetensors", "README.md", "samples.png")
#: Optional files a prior version folder may contain.
OPTIONAL_PRIOR_FILES = ("latents.png", "recipe.yaml", "checksums.json")
#: The per-version checksum manifest.
CHECKSUMS_FILE = "checksums.json"
#: The registry index file at the root of a registry directory.
INDEX_FILE = "index.json"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def home() -> Path:
    """The dwp-hub home directory (``DWP_HUB_HOME`` > ``XDG_CACHE_HOME`` > ``~/.cache``)."""
    explicit = os.environ.get("DWP_HUB_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dwp-hub"


def user_registry() -> Path:
    """The user's own registry directory (``<home>/priors``)."""
    return home() / "priors"


def extra_registries() -> list[Path]:
    """Directories listed in ``DWP_HUB_REGISTRY`` (``os.pathsep``-separated), in order."""
    raw = os.environ.get("DWP_HUB_REGISTRY", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def embedded_registry() -> Path:
    """The registry shipped with the package.

    In a wheel it is ``dwp_hub/priors`` (package data); in a source checkout or editable
    install it is the repository's top-level ``priors/``.
    """
    here = Path(__file__).resolve().parent
    packaged = here / "priors"
    return packaged if packaged.is_dir() else here.parent / "priors"


def data_root() -> Path:
    """Where datasets and source checkpoints live (``DWP_HUB_DATA`` > ``<home>/data``)."""
    explicit = os.environ.get("DWP_HUB_DATA")
    if explicit:
        return Path(explicit).expanduser()
    return home() / "data"


def data_root_is_explicit() -> bool:
    """Whether the user pointed ``DWP_HUB_DATA`` somewhere."""
    return bool(os.environ.get("DWP_HUB_DATA"))


def offline() -> bool:
    """True when ``DWP_HUB_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to a true value."""
    return _flag("DWP_HUB_OFFLINE") or _flag("HF_HUB_OFFLINE")


def debug() -> bool:
    """True when ``DWP_HUB_DEBUG`` is set (CLI shows tracebacks)."""
    return _flag("DWP_HUB_DEBUG")


#: Default of ``DWP_HUB_MAX_CHECKPOINT_MB``.
DEFAULT_MAX_CHECKPOINT_MB = 4096


def max_checkpoint_bytes() -> int:
    """Largest uncompressed checkpoint ``harvest`` reads (``DWP_HUB_MAX_CHECKPOINT_MB``, default 4096 MiB).

    A value that is not a positive number falls back to the default.
    """
    raw = os.environ.get("DWP_HUB_MAX_CHECKPOINT_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_CHECKPOINT_MB
    except ValueError:
        mb = DEFAULT_MAX_CHECKPOINT_MB
    if not mb > 0 or mb != mb or mb == float("inf"):
        mb = DEFAULT_MAX_CHECKPOINT_MB
    return int(mb * (1 << 20))
