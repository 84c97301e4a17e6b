"""Datasets: MNIST-format IDX files under the data root, with verified downloads and fixed splits."""

from __future__ import annotations

from dwp_hub.data._datasets import (
    DATASETS,
    DatasetSpec,
    dataset_sha256,
    ensure_dataset,
    load_idx_dataset,
)
from dwp_hub.data._idx import read_idx
from dwp_hub.data._splits import (
    Split,
    mnist10k_protocol,
    source_split,
)

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "Split",
    "dataset_sha256",
    "ensure_dataset",
    "load_idx_dataset",
    "mnist10k_protocol",
    "read_idx",
    "source_split",
]
