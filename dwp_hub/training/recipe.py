"""Recipe files: the whole chain from data (or checkpoints) to a published prior, in YAML.

.. code-block:: yaml

    name: notmnist-7x7
    version: 1.0.0
    description: First-layer 7x7 kernels of fconv networks trained on notMNIST-10k.
    source:                      # either train source networks ...
      dataset: notmnist
      net: {arch: fconv, widths: [128, 256]}
      n_nets: 10
      epochs: 6
    # source:                    # ... or harvest existing checkpoints (paths under the data root)
    #   checkpoints: [checkpoints/cifar10-resnet/*.th]
    #   domain: cifar10
    #   network: CIFAR-10 ResNet-20/32/44/56
    harvest: {layer: "0.weight", kernel_size: 7, prune: {rule: min_norm, value: 0.1}, held_out: [9]}
    vae: {kind: conv7, z_dim: 2, hidden: 32}
    fit: {epochs: 300, lr: 0.001, batch_size: 128, seed: 0, iw_k: 1000}
    reference_elbo: 49.6
    status: published            # optional: "published" or "not yet run"
"""

from __future__ import annotations

import dataclasses
import glob
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dwp_hub import constants
from dwp_hub.card import ArchConfig
from dwp_hub.errors import CardError, RecipeError
from dwp_hub.model.nets import NetConfig
from dwp_hub.registry import Version, validate_name
from dwp_hub.training.fit import FitRecipe
from dwp_hub.training.harvest import HarvestSpec, PruneRule
from dwp_hub.training.source import SourceRecipe


@dataclass(frozen=True)
class CheckpointSource:
    """Harvest from existing checkpoints instead of training source networks."""

    checkpoints: tuple[str, ...]
    domain: str
    network: str
    protocol: str = ""


#: Allowed values of a recipe's optional top-level ``status``: ``published`` (a prior in the
#: registry was built from it) or ``not yet run`` (committed for others to run, e.g. the CIFAR
#: priors, whose images are not available on the build machines).
RECIPE_STATUSES = ("published", "not yet run")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file."""

    name: str
    version: str
    description: str
    source: SourceRecipe | CheckpointSource
    harvest: HarvestSpec
    arch: ArchConfig
    fit: FitRecipe
    reference_elbo: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    status: str | None = None

    def checkpoint_paths(self) -> list[Path]:
        """Expand checkpoint globs (relative paths are under the data root), sorted."""
        assert isinstance(self.source, CheckpointSource)
        out: list[Path] = []
        for pattern in self.source.checkpoints:
            full = pattern if Path(pattern).is_absolute() else str(constants.data_root() / pattern)
            hits = sorted(glob.glob(full))
            if not hits:
                raise RecipeError(f"No checkpoint matches {full}. Set DWP_HUB_DATA to the folder holding them.")
            out += [Path(h) for h in hits]
        return out


def _take(d: dict[str, Any], cls: type, where: str, **conv: Any) -> Any:
    if not isinstance(d, dict):
        raise RecipeError(f"'{where}' must be a mapping.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise RecipeError(f"Unknown key(s) in '{where}': {', '.join(sorted(unknown))}. Allowed: {', '.join(sorted(names))}.")
    kwargs = {k: conv[k](v) if k in conv else v for k, v in d.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, CardError) as err:
        raise RecipeError(f"Bad '{where}': {err}") from err


def parse_recipe(data: dict[str, Any], path: Path | None = None) -> Recipe:
    """Validate a recipe mapping."""
    if not isinstance(data, dict):
        raise RecipeError("A recipe must be a YAML mapping.")
    for key in ("name", "version", "source", "harvest", "vae"):
        if key not in data:
            raise RecipeError(f"Recipe is missing '{key}'.")
    allowed = {"name", "version", "description", "source", "harvest", "vae", "fit", "reference_elbo", "status"}
    if set(data) - allowed:
        raise RecipeError(f"Unknown recipe key(s): {', '.join(sorted(set(data) - allowed))}.")
    status = data.get("status")
    if status is not None and status not in RECIPE_STATUSES:
        raise RecipeError(f"Recipe status {status!r} is not one of: {', '.join(map(repr, RECIPE_STATUSES))}.")
    validate_name(str(data["name"]))
    Version.parse(str(data["version"]))
    src = data["source"]
    if isinstance(src, dict) and "checkpoints" in src:
        source: SourceRecipe | CheckpointSource = _take(src, CheckpointSource, "source", checkpoints=tuple)
    else:
        source = _take(src, SourceRecipe, "source", net=lambda n: NetConfig.from_dict(n))
    harvest = _take(data["harvest"], HarvestSpec, "harvest",
                    prune=lambda p: _take(p, PruneRule, "harvest.prune"), held_out=tuple)
    vae = data["vae"]
    if isinstance(vae, dict):
        vae = {"kernel_size": harvest.kernel_size, **vae}
    arch = _take(vae, ArchConfig, "vae")
    if arch.kernel_size != harvest.kernel_size:
        raise RecipeError(f"vae.kernel_size {arch.kernel_size} != harvest.kernel_size {harvest.kernel_size}.")
    fit = _take(data.get("fit", {}), FitRecipe, "fit")
    return Recipe(str(data["name"]), str(data["version"]), str(data.get("description", "")), source, harvest,
                  arch, fit, data.get("reference_elbo"), data, path, status=status)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError as err:
        raise RecipeError(f"Recipe {path} does not exist.") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"Recipe {path} is not valid YAML: {err}") from err
    return parse_recipe(data, path)


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def build(recipe: Recipe, to: str | Path, work_dir: str | Path | None = None, workers: int = 1,
          progress: bool = True, publish_it: bool = True) -> Path:
    """Run the whole chain for ``recipe`` and publish into ``to``; return the version folder
    (or the staging folder when ``publish_it`` is false).

    Source networks are cached in ``work_dir`` by a hash of their recipe, so priors that share
    source networks (7x7 and 5x5 of the same nets) train them once; the time and peak memory of
    that training are recorded beside them and added to the build figures in the card.
    """
    from dwp_hub.training.fit import fit_vae
    from dwp_hub.training.harvest import harvest
    from dwp_hub.training.publish import make_card, publish, source_info, write_version_folder
    from dwp_hub.training.source import source_dir, train_sources

    work = Path(work_dir) if work_dir is not None else constants.home() / "work"
    start = time.perf_counter()
    source_seconds, source_peak = 0.0, 0.0
    if isinstance(recipe.source, SourceRecipe):
        sdir = source_dir(recipe.source, work)
        timing = sdir / "timing.json"
        t0 = time.perf_counter()
        checkpoints = train_sources(recipe.source, sdir, workers=workers, progress=progress)
        if not timing.is_file():
            timing.write_text(json.dumps({"seconds": time.perf_counter() - t0, "peak_memory_mb": _peak_mb(),
                                          "workers": workers}))
        record = json.loads(timing.read_text())
        source_seconds, source_peak = float(record["seconds"]), float(record["peak_memory_mb"])
        start = time.perf_counter()  # source time is counted from its own record
        src_recipe = recipe.source
        protocol_net = f"{src_recipe.net.arch}{tuple(src_recipe.net.widths)}".replace(" ", "")
        domain, network = src_recipe.dataset, protocol_net
    else:
        checkpoints = recipe.checkpoint_paths()
        domain, network = recipe.source.domain, recipe.source.network
    data = harvest(checkpoints, recipe.harvest)
    from dwp_hub.training.harvest import read_checkpoint

    first_meta = read_checkpoint(checkpoints[0])[1]
    data.meta["source"] = {
        "dataset": domain,
        "dataset_sha256": first_meta.get("dataset_sha256", ""),
        "network": network,
        "protocol": first_meta.get("split", getattr(recipe.source, "protocol", "")),
    }
    result = fit_vae(data, recipe.arch, recipe.fit, progress=progress, reference_elbo=recipe.reference_elbo)
    build_seconds = round(time.perf_counter() - start + source_seconds, 1)
    rebuild = f"dwp-hub build {recipe.path if recipe.path else 'recipe.yaml'} --to DIR"
    card = make_card(result, data, recipe.arch, recipe.fit, name=recipe.name, version=recipe.version,
                     description=recipe.description, source=source_info(data, domain, network),
                     recipe={**recipe.raw, "rebuild": rebuild},
                     build_seconds=build_seconds, build_peak_memory_mb=round(max(_peak_mb(), source_peak), 1))
    staging = work / f"fit-{recipe.name}-{recipe.version}"
    write_version_folder(staging, result.vae, card, data.held_out if len(data.held_out) else data.train)
    if recipe.path is not None:
        (staging / "recipe.yaml").write_text(recipe.path.read_text("utf-8"), "utf-8")
    if not publish_it:
        return staging
    return publish(staging, recipe.name, recipe.version, to, recipe.description)
