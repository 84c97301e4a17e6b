"""Read and write ``model.safetensors``: VAE tensors plus the card in the metadata header."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from dwp_hub._fs import atomic_write_bytes
from dwp_hub.card import PriorCard, card_from_weights_file, check_legacy_arch_pin
from dwp_hub.constants import CARD_METADATA_KEY, CARD_SCHEMA_VERSION, SCHEMA_METADATA_KEY
from dwp_hub.errors import CardError, IntegrityError
from dwp_hub.model.vae import KernelVAE


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order (name, dtype, shape, raw bytes): the card's
    ``weights_sha256``. Independent of the file's header, so it survives re-serialisation."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy() if t.numel() else b"")  # buffer protocol: no copy
    return h.hexdigest()


def vae_tensors(vae: KernelVAE) -> dict[str, torch.Tensor]:
    """The VAE's state dict as contiguous CPU float32 tensors."""
    return {k: v.detach().float().contiguous().cpu() for k, v in vae.state_dict().items()}


def card_weights_sha256(card: PriorCard, tensors: dict[str, torch.Tensor]) -> str:
    """The ``weights_sha256`` that ``card`` must carry for ``tensors`` under its scope (new cards:
    the tensors and the architecture; legacy cards: the tensors only)."""
    return card.expected_weights_sha256(tensors_sha256(tensors))


def write_weights(path: str | Path, tensors: dict[str, torch.Tensor], card: PriorCard) -> None:
    """Write tensors and card atomically. ``card.weights_sha256`` must match ``tensors`` (and, for
    new cards, the architecture)."""
    if card.weights_sha256 != card_weights_sha256(card, tensors):
        raise CardError("card.weights_sha256 does not match the tensors being written.", field="card.weights_sha256")
    atomic_write_bytes(path, safetensors_bytes(tensors, {CARD_METADATA_KEY: card.to_json(),
                                                         SCHEMA_METADATA_KEY: str(CARD_SCHEMA_VERSION)}))


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file of ``tensors`` and ``metadata``, byte for byte the same for the same input.

    The safetensors writer emits the ``__metadata__`` entries in hash-map order, which changes from
    one call to the next; here they are sorted, so a version folder written twice (locally and for
    the Hub, or by a rebuild) has the same sha256.
    """
    raw = save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as the writer pads it
    return struct.pack("<Q", len(text)) + text + raw[8 + n :]


def read_weights(path: str | Path) -> tuple[PriorCard, dict[str, torch.Tensor]]:
    """Read card and tensors, verifying the tensors (and, for new cards, the architecture) against
    ``card.weights_sha256``; a legacy card's architecture is checked against its pin."""
    path = Path(path)
    card = card_from_weights_file(path)  # refuses non-regular files before opening them
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise IntegrityError(f"{path.name} is corrupt or truncated ({str(err)[:200]}).", path=path) from err
    got = card_weights_sha256(card, tensors)
    if got != card.weights_sha256:
        covers = "tensors and architecture" if card.weights_sha256_scope != "tensors" else "tensor"
        raise IntegrityError(
            f"{path}: {covers} sha256 {got} does not match the card's weights_sha256 "
            f"{card.weights_sha256}. The weights or the card's architecture were modified; refusing to load. "
            "Re-download or re-publish this prior.", path=path, expected=card.weights_sha256, actual=got,
        )
    try:
        check_legacy_arch_pin(card)
    except CardError as err:
        raise CardError(f"{path}: {err}", path=path, field=err.field) from err
    return card, tensors


def build_vae(card: PriorCard, tensors: dict[str, torch.Tensor]) -> KernelVAE:
    """Rebuild the VAE from the card's architecture alone and load ``tensors`` into it."""
    vae = KernelVAE(card.arch, init=False)  # no random init: every parameter is assigned below
    try:
        vae.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise CardError(
            f"Weights do not fit the architecture in the card ({card.arch}): {str(err).splitlines()[0][:300]}",
            field="card.arch",
        ) from err
    return vae
