"""Pictures for cards and the CLI: kernel grids and latent-space scatter plots (matplotlib, Agg).

Kernels are tiled into ONE image (the layout of ``torchvision.utils.make_grid``) and drawn on one
shared, symmetric, diverging colour scale (blue negative, red positive, white zero) with a colour
bar, so sign and magnitude compare across kernels. Cost does not grow with one axis per kernel.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from dwp_hub._fs import atomic_path

#: The diverging colour map of every kernel picture; padding between kernels is drawn in _PAD_COLOUR.
CMAP = "RdBu_r"
_PAD_COLOUR = "#d9d9d9"
#: Formats a picture may be written in (matplotlib names).
PICTURE_FORMATS = ("png", "jpeg", "pdf", "svg")
#: Figure width (inches) per kernel column, and the most a figure grows to.
_INCH_PER_KERNEL = 0.45
_MAX_INCHES = 16.0


def _plt() -> Any:  # imported lazily: matplotlib is slow to import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tile(kernels: torch.Tensor, ncol: int | None = None, padding: int = 1) -> torch.Tensor:
    """Kernels ``[N, 1, k, k]`` (or ``[N, k, k]``) tiled into one ``[H, W]`` image, ``ncol`` per row
    (default: about square), ``padding`` NaN pixels around each (drawn as the background), as
    :func:`torchvision.utils.make_grid` lays them out."""
    from torchvision.utils import make_grid

    k = kernels.detach().float().cpu().reshape(-1, 1, *kernels.shape[-2:])
    ncol = ncol or max(1, math.ceil(math.sqrt(len(k))))
    return make_grid(k, nrow=ncol, padding=padding, pad_value=float("nan"))[0]


def _scale(*tensors: torch.Tensor) -> float:
    """The symmetric colour limit shared by ``tensors``: their largest finite magnitude."""
    m = max((float(t[torch.isfinite(t)].abs().max()) for t in tensors if torch.isfinite(t).any()), default=0.0)
    return m if m > 0 else 1.0


def _cmap(plt: Any) -> Any:
    return plt.get_cmap(CMAP).with_extremes(bad=_PAD_COLOUR)


def _save(fig: Any, path: str | Path, format: str) -> Path:
    if format not in PICTURE_FORMATS:
        from dwp_hub.errors import ConfigError

        raise ConfigError(f"Unknown picture format {format!r}; use one of {', '.join(PICTURE_FORMATS)}.")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=format, dpi=100)
    return path


def grid_figure(kernels: torch.Tensor, title: str = "", ncol: int | None = None) -> Any:
    """A matplotlib figure of the kernel grid: one image, shared diverging scale, colour bar, title
    above the grid (constrained layout: the title never overlaps it)."""
    plt = _plt()
    image = tile(kernels, ncol)
    h, w = image.shape
    width = min(_MAX_INCHES, max(3.0, w / (kernels.shape[-1] + 1) * _INCH_PER_KERNEL + 1.2))
    height = min(_MAX_INCHES, max(2.0, (width - 1.2) * h / w + (0.6 if title else 0.2)))
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    lim = _scale(image)
    shown = ax.imshow(image.numpy(), cmap=_cmap(plt), vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, shrink=0.8, label="weight")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def kernel_grid(kernels: torch.Tensor, path: str | Path, title: str = "", ncol: int | None = None,
                format: str = "png") -> Path:
    """Save kernels ``[N, 1, k, k]`` (or ``[N, k, k]``) as one grid on a shared diverging colour scale
    with a colour bar, in ``format`` (png, jpeg, pdf or svg), through a temp file and rename."""
    plt = _plt()
    fig = grid_figure(kernels, title, ncol)
    try:
        return _save(fig, path, format)
    finally:
        plt.close(fig)


def kernel_panels(panels: list[tuple[str, torch.Tensor]], path: str | Path, title: str = "", ncol: int = 16) -> Path:
    """Save several titled groups of kernels, one grid each, on ONE shared diverging colour scale
    with one colour bar, as one PNG."""
    plt = _plt()
    images = [(name, tile(k, min(ncol, max(1, len(k.reshape(-1, *k.shape[-2:])))))) for name, k in panels]
    lim = _scale(*(im for _, im in images))
    cmap = _cmap(plt)
    heights = [im.shape[0] / im.shape[1] for _, im in images]
    width = ncol * _INCH_PER_KERNEL + 1.2
    fig, axes = plt.subplots(len(images), 1, squeeze=False, layout="constrained",
                             figsize=(width, sum(heights) * (width - 1.2) + 0.35 * len(images) + (0.4 if title else 0.1)),
                             height_ratios=heights)
    shown = None
    for ax, (name, image) in zip(axes[:, 0], images):
        shown = ax.imshow(image.numpy(), cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(name, fontsize=8)
    if shown is not None:
        fig.colorbar(shown, ax=axes[:, 0].tolist(), shrink=0.8, label="weight")
    if title:
        fig.suptitle(title, fontsize=9)
    try:
        return _save(fig, path, "png")
    finally:
        plt.close(fig)


def latent_scatter(means: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Scatter encoder means: 2-D latents directly, otherwise their first two principal components."""
    plt = _plt()
    z = means.detach().float().cpu()
    label = ("z1", "z2")
    if z.shape[1] > 2:
        zc = z - z.mean(0)
        _, _, v = torch.linalg.svd(zc, full_matrices=False)
        z = zc @ v[:2].T
        label = ("PC1 of E[z|w]", "PC2 of E[z|w]")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(z[:, 0].numpy(), z[:, 1].numpy(), s=3, alpha=0.5)
    ax.set_xlabel(label[0])
    ax.set_ylabel(label[1])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path
