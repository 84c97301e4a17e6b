"""Safetensors checkpoints of source networks: tensors plus a JSON config in the header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dwp_hub._fs import atomic_path

#: Header key of the source-network metadata.
SOURCE_META_KEY = "dwp_hub.source"


def save_checkpoint(path: str | Path, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``state`` and ``meta`` (JSON) atomically to ``path`` as safetensors."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={SOURCE_META_KEY: json.dumps(meta, sort_keys=True)})
