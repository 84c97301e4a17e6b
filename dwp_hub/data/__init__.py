"""Datasets: MNIST-format IDX files and CIFAR binary archives under the data root, with verified
downloads and fixed splits."""

from __future__ import annotations

from pathlib import Path

from dwp_hub.data._cifar import (
    CIFAR_DATASETS,
    CifarSpec,
    cifar_sha256,
    ensure_cifar,
    load_cifar,
    read_cifar_binary,
)
from dwp_hub.data._datasets import (
    DATASETS,
    DatasetSpec,
    ensure_dataset,
    idx_sha256,
    load_idx_dataset,
)
from dwp_hub.data._idx import read_idx
from dwp_hub.data._splits import (
    PROTOCOLS,
    Split,
    mnist10k_protocol,
    source_split,
)



def dataset_sha256(name: str, root: str | Path | None = None) -> str:
    """The provenance hash recorded in cards: sha256 over the image file then the label file for
    MNIST-format datasets, over the binary record files for ``cifar10`` / ``cifar100``
    (:func:`cifar_sha256`)."""
    if name in CIFAR_DATASETS:
        return cifar_sha256(name, root)
    return idx_sha256(name, root)


__all__ = [
    "PROTOCOLS",
    "CIFAR_DATASETS",
    "DATASETS",
    "CifarSpec",
    "DatasetSpec",
    "Split",
    "cifar_sha256",
    "dataset_sha256",
    "ensure_cifar",
    "ensure_dataset",
    "load_cifar",
    "load_idx_dataset",
    "mnist10k_protocol",
    "read_cifar_binary",
    "read_idx",
    "source_split",
]
