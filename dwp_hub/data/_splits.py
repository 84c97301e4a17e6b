"""The fixed splits of the data README (offline protocols) and the paper's own protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dwp_hub.data._cifar import CIFAR_DATASETS, load_cifar
from dwp_hub.data._datasets import load_idx_dataset
from dwp_hub.errors import ConfigError, DataNotFoundError


@dataclass(frozen=True)
class Split:
    """Train and evaluation arrays plus a description of how they were drawn."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    protocol: str


def source_split(dataset: str, seed: int = 0, root: str | Path | None = None) -> Split:
    """Source-domain split for training source networks.

    * ``notmnist``: the 10k file, permuted by ``seed``, 9,000 train / 1,000 validation.
    * ``mnist``: images 0-4999 of the MNIST test file (never the 5000-9999 evaluation half),
      permuted by ``seed``, 4,500 train / 500 validation.
    * ``cifar10`` / ``cifar100``: the training set, permuted by ``seed``, the last 90% train and
      the first 10% validation (45,000 / 5,000); the test set is never touched. CIFAR images are
      ``[N, 3, 32, 32]``; CIFAR-100 labels are the 100 fine classes.
    """
    if dataset in CIFAR_DATASETS:
        x, y = load_cifar(dataset, "train", root)
        n_val = len(x) // 10
        title = CIFAR_DATASETS[dataset].title
        protocol = f"{title} train set: {len(x) - n_val:,} train / {n_val:,} val, permutation seed {seed}"
    elif dataset == "notmnist":
        x, y = load_idx_dataset(dataset, root)
        n_val, protocol = 1000, f"notMNIST-10k: 9,000 train / 1,000 val, permutation seed {seed}"
    elif dataset == "mnist":
        x, y = load_idx_dataset(dataset, root)
        x, y = x[:5000], y[:5000]
        n_val, protocol = 500, f"MNIST-10k images 0-4999: 4,500 train / 500 val, permutation seed {seed}"
    else:
        raise DataNotFoundError(f"No source split for {dataset!r}; use 'notmnist', 'mnist', 'cifar10' or 'cifar100'.")
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, va = perm[n_val:], perm[:n_val]
    return Split(x[tr], y[tr], x[va], y[va], protocol)


#: Evaluation protocols of the 10k files: where training subsets are drawn from and what is scored.
#: "test": the final tables (train from images 0-4999, score 5000-9999); "validation": choosing
#: recipes and settings (train from 0-2499, score 2500-4999; images 5000-9999 are never touched).
PROTOCOLS = {"test": ((0, 5000), (5000, 10000)), "validation": ((0, 2500), (2500, 5000))}


def mnist10k_protocol(n_train: int, seed: int, root: str | Path | None = None, *,
                      protocol: str = "test", dataset: str = "mnist") -> Split:
    """The MNIST-10k protocol: ``n_train`` class-stratified images from 0-4999, test on 5000-9999.

    ``protocol="validation"`` draws from images 0-2499 and scores 2500-4999 (for choosing recipes
    without touching the test images). ``dataset="notmnist"`` applies the same protocol to the
    notMNIST-10k file (the reverse direction: MNIST priors on notMNIST).
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"Unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    if dataset not in ("mnist", "notmnist"):
        raise ConfigError(f"The 10k protocol is defined for mnist and notmnist, not {dataset!r}.")
    (a, b), (c, d) = PROTOCOLS[protocol]
    if n_train % 10 or not 10 <= n_train <= b - a:
        raise ConfigError(f"n_train must be a multiple of 10 in [10, {b - a}], got {n_train}.")
    x, y = load_idx_dataset(dataset, root)
    pool_x, pool_y = x[a:b], y[a:b]
    smallest = int(np.bincount(pool_y, minlength=10).min())
    if n_train // 10 > smallest:
        raise ConfigError(
            f"n_train={n_train} needs {n_train // 10} images per class, but images {a}-{b - 1} hold only {smallest} "
            f"of the rarest class; use n_train <= {smallest * 10}."
        )
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(pool_y == c), n_train // 10, replace=False) for c in range(10)]
    )
    idx = rng.permutation(idx)
    title = "MNIST-10k" if dataset == "mnist" else "notMNIST-10k"
    what = "test" if protocol == "test" else "validate on"
    return Split(
        pool_x[idx], pool_y[idx], x[c:d], y[c:d],
        f"{title} {protocol} protocol: {n_train} stratified from {a}-{b - 1} (seed {seed}), {what} {c}-{d - 1}"
        if (protocol, dataset) != ("test", "mnist") else
        f"MNIST-10k protocol: {n_train} stratified from 0-4999 (seed {seed}), test 5000-9999",
    )
