"""Write fitted priors as version folders and publish them into registries."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import shutil
from pathlib import Path
from typing import Any

import torch

from dwp_hub._fs import atomic_write_text
from dwp_hub._render import render_readme
from dwp_hub._version import __version__
from dwp_hub.card import WEIGHTS_SCOPE, ArchConfig, KernelsInfo, PriorCard, SourceInfo, TrainingInfo, bound_weights_sha256
from dwp_hub.constants import PRIOR_FILES
from dwp_hub.errors import CardError, IntegrityError, PriorExistsError
from dwp_hub.model._io import read_weights, tensors_sha256, vae_tensors, write_weights
from dwp_hub.registry import LocalRegistry, Version, validate_name
from dwp_hub.training.fit import FitRecipe, FitResult, peak_memory_mb
from dwp_hub.training.harvest import KernelDataset

_PICTURE_SEED = 0


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def source_info(data: KernelDataset, domain: str | None = None, network: str | None = None) -> SourceInfo:
    """Provenance of a kernel dataset, read from its harvest metadata."""
    m = data.meta
    src = m.get("source", {})
    return SourceInfo(
        domain=domain or src.get("dataset", "unknown"),
        dataset_sha256=src.get("dataset_sha256", ""),
        network=network or src.get("network", "unknown"),
        layer=m["layer_pattern"] if len(m.get("layers", [])) != 1 else m["layers"][0],
        n_networks=len(m["sources"]),
        held_out_networks=list(m["held_out_nets"]),
        protocol=src.get("protocol", ""),
        checkpoints=m["sources"],
    )


def make_card(result: FitResult, data: KernelDataset, arch: ArchConfig, fit: FitRecipe, *, name: str,
              version: str, description: str, source: SourceInfo, recipe: dict[str, Any] | None = None,
              build_seconds: float | None = None, build_peak_memory_mb: float | None = None) -> PriorCard:
    """Assemble the card of a freshly fitted prior."""
    m = data.meta
    return PriorCard(
        name=name, version=version, description=description, arch=arch, source=source,
        kernels=KernelsInfo(total=m["kernels_total"], kept=m["kernels_kept"], n_train=m["n_train"],
                            n_held_out=m["n_held_out"], prune_rule=m["prune"]["description"],
                            prune_threshold=float(m["prune"]["threshold"])),
        training=TrainingInfo(epochs=fit.epochs, lr=fit.lr, batch_size=fit.batch_size, seed=fit.seed,
                              seconds=round(result.seconds, 1), peak_memory_mb=round(peak_memory_mb(), 1),
                              threads=torch.get_num_threads(), torch_version=torch.__version__,
                              build_seconds=build_seconds, build_peak_memory_mb=build_peak_memory_mb),
        metrics=result.metrics, kernel_stats=result.stats,
        weights_sha256=bound_weights_sha256(tensors_sha256(vae_tensors(result.vae)), arch),
        weights_sha256_scope=WEIGHTS_SCOPE, created=_now(), dwp_hub_version=__version__, recipe=recipe or {},
    )


def write_version_folder(folder: str | Path, vae: torch.nn.Module, card: PriorCard,
                         held_out: torch.Tensor | None = None) -> Path:
    """Write ``model.safetensors``, ``samples.png``, ``latents.png`` and ``README.md``."""
    from dwp_hub._plot import kernel_panels, latent_scatter
    from dwp_hub.model.prior import DeepWeightPrior

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = vae_tensors(vae)
    write_weights(folder / "model.safetensors", tensors, card)
    prior = DeepWeightPrior(card, vae)
    gen = torch.Generator().manual_seed(_PICTURE_SEED)
    panels = [("decoder means of z ~ N(0, I)", prior.sample(32, generator=gen, noise=False)),
              ("samples of p(w) (with decoder noise)", prior.sample(32, generator=gen, noise=True))]
    if held_out is not None and len(held_out):
        panels.append(("real held-out kernels", held_out[torch.randperm(len(held_out), generator=gen)[:32]]))
    kernel_panels(panels, folder / "samples.png", f"{card.name} (seed {_PICTURE_SEED})")
    if held_out is not None and len(held_out):
        mean, _ = prior.encode(held_out[:2000])
        latent_scatter(mean, folder / "latents.png", f"{card.name}: E[z|w] of held-out kernels")
    atomic_write_text(folder / "README.md", render_readme(card))
    return folder


def publish(path: str | Path, name: str, version: str, to: str | Path, description: str | None = None) -> Path:
    """Publish the prior in folder ``path`` (a ``fit`` output or another version folder) as
    ``name@version`` into the registry directory ``to``.

    The folder is validated (weights against their card), the card is re-stamped with the new
    name and version, and the version folder is written to a hidden temp folder inside the
    registry and renamed into place; the index is updated under a lock. Existing versions are
    never overwritten.

    ``to`` may also be ``hf-hub:ORG/REPO`` to publish to the Hugging Face Hub.
    """
    validate_name(name)
    Version.parse(version)
    path = Path(path)
    for f in ("model.safetensors", "samples.png"):
        if not (path / f).is_file():
            raise IntegrityError(f"{path / f} is missing; point publish at a folder written by 'dwp-hub fit'.")
    card, tensors = read_weights(path / "model.safetensors")
    card = dataclasses.replace(card, name=name, version=version, created=_now(),
                               description=description if description is not None else card.description,
                               # a new version binds its architecture into the weights hash, whatever the source's scope
                               weights_sha256=bound_weights_sha256(tensors_sha256(tensors), card.arch),
                               weights_sha256_scope=WEIGHTS_SCOPE)
    if str(to).startswith("hf-hub:"):
        from dwp_hub.registry._hf import publish_to_hub

        return publish_to_hub(path, card, tensors, str(to))
    registry = LocalRegistry(to)
    if version in {str(v) for v in registry.versions(name)}:
        registry.clean_crash_leftovers()  # a retry after a crash that had already indexed this version
        raise PriorExistsError(
            f"{name}@{version} already exists in {registry.label}; versions are immutable. Publish a new version."
        )
    staging = registry.staging_dir()  # the writability probe: unique per publish, so concurrent publishes never collide
    try:
        write_weights(staging / "model.safetensors", tensors, card)
        for f in ("samples.png", "latents.png", "recipe.yaml"):
            if (path / f).is_file():
                shutil.copyfile(path / f, staging / f)
        atomic_write_text(staging / "README.md", render_readme(card))
        missing = [f for f in PRIOR_FILES if not (staging / f).is_file()]
        if missing:
            raise CardError(f"Cannot publish: {', '.join(missing)} missing.")
        return registry.add(staging, card)
    finally:
        registry.remove_staging(staging)
