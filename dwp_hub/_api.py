"""``load``: references to frozen, verified priors."""

from __future__ import annotations

from pathlib import Path

import torch

from dwp_hub.errors import CardError
from dwp_hub.model._io import build_vae, read_weights
from dwp_hub.model.prior import DeepWeightPrior
from dwp_hub.registry import HubRef, parse_ref, resolve, verify_folder


def load_folder(folder: str | Path, expected: dict[str, str] | None = None, name: str | None = None,
                version: str | None = None, source: str = "", commit: str | None = None) -> DeepWeightPrior:
    """Verify a prior version folder file by file and load it."""
    folder = Path(folder)
    verify_folder(folder, expected, name, version)
    card, tensors = read_weights(folder / "model.safetensors")
    try:
        vae = build_vae(card, tensors)
    except CardError as err:
        raise CardError(f"{folder / 'model.safetensors'}: {err}") from err
    return DeepWeightPrior(card, vae, source=source or str(folder), commit=commit)


def load(
    spec: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    cache_dir: str | Path | None = None,
) -> DeepWeightPrior:
    """Load a published prior, verified and frozen.

    Args:
        spec: ``name`` (newest version), ``name@X.Y.Z`` (pinned), or
            ``hf-hub:ORG/REPO[@REVISION]`` (a Hugging Face Hub repository, a tag such as
            ``v1.0.0``, a branch or a commit sha).
        device, dtype: where to put the VAE (default CPU, float32).
        cache_dir: Hub cache directory (default: huggingface_hub's, honouring ``HF_HUB_CACHE``).

    Raises:
        PriorNotFoundError: no registry has the name (the message lists close matches).
        IntegrityError: a file is missing, unexpected, or its sha256 does not match.

    Example:
        >>> prior = dwp_hub.load("notmnist-7x7")
        >>> kernels = prior.sample(64, generator=torch.Generator().manual_seed(0))
    """
    ref = parse_ref(spec)
    if isinstance(ref, HubRef):
        from dwp_hub.registry._hf import download_prior

        folder, commit = download_prior(ref, cache_dir=cache_dir)
        prior = load_folder(folder, source=str(ref), commit=commit)
    else:
        resolved = resolve(ref)
        entry = resolved.registry.entry(resolved.name, resolved.version)
        prior = load_folder(resolved.folder, entry.get("files"), resolved.name, str(resolved.version),
                            source=f"{resolved.registry.label}:{resolved.spec}")
    if device is not None or dtype is not None:
        prior.to(device=device, dtype=dtype)
    return prior
