"""How diverse are a prior's kernels? A diagnostic for initialisation from hub priors.

For each prior: the mean absolute cosine similarity between distinct kernels (decoder means of
z ~ N(0, I), the initialisation default; samples with decoder noise; and i.i.d. Gaussian kernels of
the same size as the reference), and the median L2 norm of decoder means beside the card's median
norm of the real training kernels. Filters that all point the same way (|cos| near 1) give a conv
layer many copies of one feature.

Usage::

    python tools/prior_diversity.py notmnist-7x7 notmnist-5x5 cifar10-3x3 --out docs/results/prior_diversity.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

import dwp_hub


def mean_abs_cos(kernels: torch.Tensor) -> float:
    """Mean |cosine similarity| over all pairs of distinct kernels ``[n, ...]``."""
    x = F.normalize(kernels.flatten(1), dim=1)
    c = (x @ x.T).abs()
    n = len(x)
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("priors", nargs="+")
    ap.add_argument("--n", type=int, default=1000, help="kernels per prior")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write a markdown table here")
    args = ap.parse_args(argv)
    command = "python tools/prior_diversity.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    lines = [
        "# Diversity of prior samples", "", f"Command: `{command}`", "",
        (f"{args.n} kernels per prior, seed {args.seed}. Mean |cos| between distinct kernels: 1 means every "
         "kernel is the same pattern up to scale; i.i.d. Gaussian kernels of the same size are the reference."), "",
        ("| prior | mean abs cos: decoder means | with decoder noise | i.i.d. Gaussian | median norm of decoder means "
         "| median norm of the real training kernels (card) |"),
        "|---|---|---|---|---|---|",
    ]
    for ref in args.priors:
        prior = dwp_hub.load(ref)
        g = torch.Generator().manual_seed(args.seed)
        means = prior.sample(args.n, generator=g, noise=False)
        noisy = prior.sample(args.n, generator=g, noise=True)
        gauss = torch.randn(means.shape, generator=g)
        q50 = prior.card.kernel_stats.norm_quantiles.get("q50", float("nan"))
        lines.append(f"| `{prior.card.spec}` | {mean_abs_cos(means):.3f} | {mean_abs_cos(noisy):.3f} | "
                     f"{mean_abs_cos(gauss):.3f} | {float(means.flatten(1).norm(dim=1).median()):.3f} | {q50:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
