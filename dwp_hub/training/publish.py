"""Write fitted priors as version folders and publish them into registries.

One path for both targets: :func:`publish` re-stamps the card (name, version, description, and
the same fields of its embedded recipe), then the version folder is written by
:func:`dwp_hub.registry.write_version` -- into a staging folder of a local registry, or into the
temp folder a Hub commit is made from -- and :class:`~dwp_hub.registry.PublishResult` describes
the outcome either way.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from dwp_hub._version import __version__
from dwp_hub.card import (
    DEFAULT_LICENSE,
    WEIGHTS_SCOPE,
    ArchConfig,
    DataLicense,
    KernelsInfo,
    PriorCard,
    SourceInfo,
    TrainingInfo,
    bound_weights_sha256,
    canonical_license,
    merge_license,
)
from dwp_hub.errors import IntegrityError, PriorExistsError
from dwp_hub.model._io import read_weights, tensors_sha256, vae_tensors
from dwp_hub.registry import LocalRegistry, PublishResult, Version, validate_name, write_version
from dwp_hub.registry._local import recipe_yaml
from dwp_hub.training.fit import FitRecipe, FitResult, peak_memory_mb
from dwp_hub.training.harvest import KernelDataset

__all__ = ["PublishResult", "draft_recipe", "license_recipe_keys", "make_card", "publish", "source_info",
           "write_version_folder"]

_PICTURE_SEED = 0
#: ``rebuild`` of a card whose recipe was put together step by step: its ``recipe.yaml`` rebuilds it.
STEPWISE_REBUILD = "dwp-hub build recipe.yaml --to DIR"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


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


#: The recipe keys of the licence (a recipe without them: the default licence).
LICENSE_KEYS = ("license", "license_name", "license_link")


def license_recipe_keys(license: str = DEFAULT_LICENSE, license_name: str | None = None,
                        license_link: str | None = None) -> dict[str, str]:
    """The recipe keys that give a card this licence: none for the default (recipes and cards written before
    the option stay as they were)."""
    out = {} if canonical_license(license) == DEFAULT_LICENSE else {"license": canonical_license(license)}
    return {**out, **({"license_name": license_name} if license_name is not None else {}),
            **({"license_link": license_link} if license_link is not None else {})}


def draft_recipe(data: KernelDataset, arch: ArchConfig, fit: FitRecipe, *, name: str, version: str,
                 description: str = "", license: str = DEFAULT_LICENSE, license_name: str | None = None,
                 license_link: str | None = None) -> dict[str, Any]:
    """The recipe of a prior fitted step by step (``train-source``, ``harvest``, ``fit``): the source and
    harvest sections the harvest recorded in the kernel dataset (``meta["recipe"]``), this VAE and fit.
    ``dwp-hub build`` of it repeats the chain. ``{}`` when the kernel dataset carries no such record
    (written by an older dwp-hub)."""
    made = data.meta.get("recipe")
    if not isinstance(made, dict) or not isinstance(made.get("source"), dict) or not isinstance(made.get("harvest"), dict):
        return {}
    return {"name": name, "version": version, **({"description": description} if description else {}),
            **license_recipe_keys(license, license_name, license_link),
            "source": made["source"], "harvest": made["harvest"], "vae": asdict(arch), "fit": fit.to_dict(),
            "rebuild": STEPWISE_REBUILD}


def make_card(result: FitResult, data: KernelDataset, arch: ArchConfig, fit: FitRecipe, *, name: str,
              version: str, description: str, source: SourceInfo, recipe: dict[str, Any] | None = None,
              build_seconds: float | None = None, build_peak_memory_mb: float | None = None,
              license: str = DEFAULT_LICENSE, license_name: str | None = None,
              license_link: str | None = None) -> PriorCard:
    """Assemble the card of a freshly fitted prior: ``license`` (a Hub licence identifier; ``other`` with
    ``license_name`` and optionally ``license_link``) is the weights' licence; the data licences are the ones
    the harvest recorded (``meta["data_licenses"]``)."""
    m = data.meta
    lic, lic_name, lic_link = merge_license((DEFAULT_LICENSE, None, None), license, license_name, license_link)
    return PriorCard(
        name=name, version=version, description=description, arch=arch, source=source,
        kernels=KernelsInfo(total=m["kernels_total"], kept=m["kernels_kept"], n_train=m["n_train"],
                            n_held_out=m["n_held_out"], prune_rule=m["prune"]["description"],
                            prune_threshold=float(m["prune"]["threshold"])),
        training=TrainingInfo(epochs=fit.epochs, lr=fit.lr, batch_size=fit.batch_size, seed=fit.seed,
                              seconds=round(result.seconds, 1), peak_memory_mb=round(peak_memory_mb(), 1),
                              device=result.device, threads=torch.get_num_threads(),
                              torch_version=torch.__version__,
                              build_seconds=build_seconds, build_peak_memory_mb=build_peak_memory_mb),
        metrics=result.metrics, kernel_stats=result.stats,
        weights_sha256=bound_weights_sha256(tensors_sha256(vae_tensors(result.vae)), arch),
        weights_sha256_scope=WEIGHTS_SCOPE, created=_now(), dwp_hub_version=__version__, recipe=recipe or {},
        license=lic, license_name=lic_name, license_link=lic_link,
        data_licenses=[DataLicense(**d) for d in m.get("data_licenses", [])],
    )


def write_version_folder(folder: str | Path, vae: torch.nn.Module, card: PriorCard,
                         held_out: torch.Tensor | None = None, recipe: str | None = None) -> Path:
    """Write a fitted prior as a (draft) version folder: draw ``samples.png`` and ``latents.png`` from
    the VAE, then write the rest with :func:`~dwp_hub.registry.write_version` (``recipe``: the text of
    ``recipe.yaml``, default rendered from ``card.recipe``)."""
    from dwp_hub._plot import kernel_panels, latent_scatter
    from dwp_hub.model.prior import DeepWeightPrior

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
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
    else:
        (folder / "latents.png").unlink(missing_ok=True)  # a picture of an earlier fit is not this prior's
    write_version(folder, card, vae_tensors(vae), recipe=recipe)
    return folder


def _recipe_license(recipe: dict[str, Any]) -> tuple[str, str | None, str | None] | None:
    """The licence a recipe gives its card (None: the recipe's licence keys are not valid)."""
    try:
        return merge_license((DEFAULT_LICENSE, None, None), recipe.get("license", DEFAULT_LICENSE),
                             recipe.get("license_name"), recipe.get("license_link"))
    except ValueError:  # CardError
        return None


def _restamp(card: PriorCard, tensors: dict[str, torch.Tensor], name: str, version: str,
             description: str | None, license: tuple[str, str | None, str | None] | None = None,
             ) -> tuple[PriorCard, str | None]:
    """``card`` as ``name@version`` (its recipe too) under ``license`` (default: the card's), and the new
    ``recipe.yaml`` text when the recipe changed (None: keep the folder's own ``recipe.yaml``)."""
    desc = description if description is not None else card.description
    lic = license if license is not None else merge_license((card.license, card.license_name, card.license_link))
    recipe = dict(card.recipe)
    changed = False
    if recipe:
        wanted: dict[str, Any] = {"name": name, "version": version}
        if desc or "description" in recipe:
            wanted["description"] = desc
        changed = any(recipe.get(k) != v for k, v in wanted.items())
        recipe.update(wanted)
        if _recipe_license(recipe) != lic:  # the recipe rebuilds the card's licence
            changed = True
            recipe = {k: v for k, v in recipe.items() if k not in LICENSE_KEYS}
            recipe.update(license_recipe_keys(*lic))
    card = dataclasses.replace(card, name=name, version=version, created=_now(), description=desc, recipe=recipe,
                               license=lic[0], license_name=lic[1], license_link=lic[2],
                               # a new version binds its architecture into the weights hash, whatever the source's scope
                               weights_sha256=bound_weights_sha256(tensors_sha256(tensors), card.arch),
                               weights_sha256_scope=WEIGHTS_SCOPE)
    return card, (recipe_yaml(card) if changed else None)


def publish(path: str | Path, name: str, version: str, to: str | Path, description: str | None = None, *,
            license: str | None = None, license_name: str | None = None,
            license_link: str | None = None) -> PublishResult:
    """Publish the prior in folder ``path`` (a ``fit`` output or another version folder) as
    ``name@version`` into the registry directory ``to``, or to the Hub when ``to`` is ``hf-hub:ORG/REPO``.

    The folder's weights are validated against their card, and the card (with the name, version and
    description of its embedded recipe) is re-stamped as ``name@version``. The version folder is then
    written by :func:`~dwp_hub.registry.write_version`: for a local registry into a hidden staging folder
    inside it, renamed into place while the index is updated under a lock; for the Hub into a temp
    folder committed as one commit tagged ``v<version>``. Existing versions are never overwritten.

    ``license`` (a Hub licence identifier), ``license_name`` and ``license_link`` replace the card's licence
    (a new ``license`` drops the card's name and link; ``other`` needs a name); the data licences are kept.

    Returns:
        A :class:`~dwp_hub.registry.PublishResult` for either target (``str()`` of it: the version folder,
        or ``hf-hub:ORG/REPO@v<version>``).

    Raises:
        PriorExistsError: the version exists already (versions are immutable).
        IntegrityError: ``path`` is not a prior folder, or the registry cannot be written.
    """
    validate_name(name)
    Version.parse(version)
    path = Path(path)
    for f in ("model.safetensors", "samples.png"):
        if not (path / f).is_file():
            raise IntegrityError(f"{path / f} is missing; point publish at a folder written by 'dwp-hub fit'.",
                                 path=path / f)
    card, tensors = read_weights(path / "model.safetensors")
    lic = None
    if (license, license_name, license_link) != (None, None, None):
        lic = merge_license((card.license, card.license_name, card.license_link), license, license_name, license_link)
    card, recipe = _restamp(card, tensors, name, version, description, lic)
    if str(to).startswith("hf-hub:"):
        from dwp_hub.registry._hf import publish_to_hub

        return publish_to_hub(path, card, tensors, str(to), recipe=recipe)
    registry = LocalRegistry(to)
    if version in {str(v) for v in registry.versions(name)}:
        registry.clean_crash_leftovers()  # a retry after a crash that had already indexed this version
        raise PriorExistsError(
            f"{name}@{version} already exists in {registry.label}; versions are immutable. Publish a new version."
        )
    staging = registry.staging_dir()  # the writability probe: unique per publish, so concurrent publishes never collide
    try:
        write_version(staging, card, tensors, files_from=path, recipe=recipe)
        dest = registry.add(staging, card)
    finally:
        registry.remove_staging(staging)
    entry = registry.entry(name, Version.parse(version))
    return PublishResult(name, version, "local", str(registry.root), f"{name}@{version}", card.weights_sha256,
                         files=dict(entry["files"]), path=dest)
