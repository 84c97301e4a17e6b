"""Public plotting: kernels on one shared diverging colour scale (sign and magnitude visible)."""

from __future__ import annotations

from pathlib import Path

import torch

from dwp_hub.errors import ConfigError

__all__ = ["plot_kernels"]

_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def plot_kernels(kernels: torch.Tensor, path: str | Path, title: str = "", ncol: int | None = None) -> Path:
    """Save kernels ``[N, 1, k, k]`` (or ``[N, k, k]``, e.g. ``prior.sample(64)``) as one grid on a shared
    diverging colour scale with a colour bar; the suffix of ``path`` picks the format (.png, .jpg, .pdf,
    .svg). Written through a temp file and a rename. Returns the path."""
    from dwp_hub._plot import kernel_grid

    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"Cannot tell the picture format from {path.name!r}; use one of {', '.join(_FORMATS)}.")
    return kernel_grid(kernels.detach().cpu(), path, title, ncol, format=fmt)
