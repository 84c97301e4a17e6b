"""Datasets: MNIST-format IDX files and CIFAR binary archives under the data root, with verified
downloads and fixed splits."""

from __future__ import annotations

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
    dataset_sha256,
    ensure_dataset,
    load_idx_dataset,
)
from dwp_hub.data._idx import read_idx
from dwp_hub.data._splits import (
    PROTOCOLS,
    Split,
    mnist10k_protocol,
    source_split,
)

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
