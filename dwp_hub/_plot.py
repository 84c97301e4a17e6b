"""Pictures for cards and the CLI: kernel grids and latent-space scatter plots (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from dwp_hub._fs import atomic_path


def _plt():  # imported lazily: matplotlib is slow to import
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def kernel_grid(kernels: torch.Tensor, path: str | Path, title: str = "", ncol: int | None = None) -> Path:
    """Save kernels ``[N, 1, k, k]`` (or ``[N, k, k]``) as a PNG grid, each on its own colour scale."""
    plt = _plt()
    kernels = kernels.detach().float().cpu().reshape(-1, *kernels.shape[-2:])
    n = len(kernels)
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 0.6 + 0.2, nrow * 0.6 + (0.5 if title else 0.2)), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(kernels[i].numpy(), cmap="gray", interpolation="nearest")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def kernel_panels(panels: list[tuple[str, torch.Tensor]], path: str | Path, title: str = "", ncol: int = 16) -> Path:
    """Save several titled groups of kernels, one block of rows each, as one PNG."""
    plt = _plt()
    groups = [(t, k.detach().float().cpu().reshape(-1, *k.shape[-2:])) for t, k in panels]
    rows = [math.ceil(len(k) / ncol) for _, k in groups]
    fig = plt.figure(figsize=(ncol * 0.5 + 0.2, sum(rows) * 0.5 + 0.35 * len(groups) + (0.4 if title else 0.1)))
    sub = fig.subfigures(len(groups), 1, height_ratios=[r + 0.7 for r in rows])
    for sf, (name, kernels), nrow in zip(sub if len(groups) > 1 else [sub], groups, rows):
        axes = sf.subplots(nrow, ncol, squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < len(kernels):
                ax.imshow(kernels[i].numpy(), cmap="gray", interpolation="nearest")
        sf.suptitle(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9, y=1.04)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


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
