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
    # license: apache-2.0        # optional: the weights' Hub licence id (default mit); "other" needs
    # license_name: My Licence   #   a license_name, and may have a license_link
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dwp_hub import constants
from dwp_hub.card import DEFAULT_LICENSE, ArchConfig, merge_license
from dwp_hub.errors import CardError, DwpHubError, RecipeError
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
    #: How the build measures the prior's transfer benefit (``None``: not measured).
    transfer: Any = None
    #: The weights' licence: a Hub licence identifier (the card's spelling, see
    #: :func:`dwp_hub.card.canonical_license`); ``other`` with ``license_name`` and optionally ``license_link``.
    license: str = DEFAULT_LICENSE
    license_name: str | None = None
    license_link: str | None = None

    def with_license(self, license: str | None = None, license_name: str | None = None,
                     license_link: str | None = None) -> Recipe:
        """This recipe under another licence (what ``build --license`` does): the values given replace the
        recipe's (a new ``license`` drops its name and link), in the typed fields and in ``raw`` (what the
        card embeds and ``recipe.yaml`` holds). A changed recipe no longer is its file: ``path`` is None.

        Raises:
            RecipeError: the licence is not one the Hub accepts (``key``: the field at fault).
        """
        if (license, license_name, license_link) == (None, None, None):
            return self
        try:
            lic = merge_license((self.license, self.license_name, self.license_link), license, license_name,
                                license_link)
        except CardError as err:
            raise RecipeError(str(err), key=(err.field or "card.license").removeprefix("card.")) from None
        if lic == (self.license, self.license_name, self.license_link):
            return self
        from dwp_hub.training.publish import LICENSE_KEYS, license_recipe_keys

        raw = {k: v for k, v in self.raw.items() if k not in LICENSE_KEYS}
        raw.update(license_recipe_keys(*lic))
        return dataclasses.replace(self, license=lic[0], license_name=lic[1], license_link=lic[2], raw=raw,
                                   path=None)

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


#: Largest recipe file read (bytes).
MAX_RECIPE_BYTES = 1 << 20
#: Most YAML nodes a recipe may expand to (aliases counted at every use: no "billion laughs").
MAX_RECIPE_NODES = 10_000
#: Longest string value in a recipe (descriptions included).
MAX_RECIPE_STRING = 4096
_MAX_INT = 2**63 - 1
_SAFE_COMPONENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)


def _short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters: errors never echo a whole value."""
    text = repr(value) if not isinstance(value, (dict, list, tuple)) else f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."


def _check_size(data: Any) -> None:
    """Refuse recipes whose YAML aliases expand beyond MAX_RECIPE_NODES nodes, or with huge strings."""
    stack, seen = [data], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > MAX_RECIPE_NODES:
            raise RecipeError(f"The recipe expands to more than {MAX_RECIPE_NODES} values (YAML anchors and aliases "
                              "that multiply?). Write the values out; a recipe is a short file.")
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, str) and len(v) > MAX_RECIPE_STRING:
            raise RecipeError(f"A recipe string is {len(v)} characters long (at most {MAX_RECIPE_STRING}): "
                              f"{v[:40]!r}...")
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > _MAX_INT:
            raise RecipeError(f"A recipe integer does not fit in 64 bits ({v.bit_length()} bits).")


def _int(d: dict[str, Any], key: str, where: str, lo: int, hi: int = _MAX_INT) -> None:
    if key in d:
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise RecipeError(f"'{where}.{key}' must be an integer in [{lo}, {hi}], got {_short(v)}.",
                              key=f"{where}.{key}")


def _num(d: dict[str, Any], key: str, where: str, *, positive: bool = False, optional: bool = False) -> None:
    if key in d:
        v = d[key]
        if v is None and optional:
            return
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v > 0 or not positive)
        if not ok:
            what = "a number > 0 (finite)" if positive else "a number (finite)"
            raise RecipeError(f"'{where}.{key}' must be {what}, got {_short(v)}.", key=f"{where}.{key}")


def _str(d: dict[str, Any], key: str, where: str) -> None:
    if key in d and not isinstance(d[key], str):
        raise RecipeError(f"'{where}{key}' must be a string, got {_short(d[key])}.", key=f"{where}{key}")


def _validate_values(data: dict[str, Any]) -> None:
    """Types and ranges of every value, before anything is built or any path is touched."""
    for key in ("name", "version", "description", "status", "license", "license_name", "license_link"):
        _str(data, key, "")
    _num(data, "reference_elbo", "recipe", optional=True)
    src = data["source"]
    if isinstance(src, dict) and "checkpoints" not in src:
        if "dataset" in src:
            _str(src, "dataset", "source.")
            from dwp_hub.data import CIFAR_DATASETS, DATASETS

            known = sorted({*DATASETS, *CIFAR_DATASETS})
            if src["dataset"] not in known or not _SAFE_COMPONENT.fullmatch(src["dataset"]):
                raise RecipeError(f"'source.dataset' {_short(src['dataset'])} is not a known dataset; use one of "
                                  f"{', '.join(known)}.", key="source.dataset")
        net = src.get("net")
        if isinstance(net, dict):
            _str(net, "arch", "source.net.")
            if "arch" in net and not _SAFE_COMPONENT.fullmatch(net["arch"]):
                raise RecipeError(f"'source.net.arch' {_short(net['arch'])} is not an architecture name.",
                                  key="source.net.arch")
        for key, lo in (("n_nets", 1), ("epochs", 1), ("batch_size", 1), ("seed", 0), ("split_seed", 0)):
            _int(src, key, "source", lo)
        _num(src, "lr", "source", positive=True)
        _num(src, "l2", "source")
        if isinstance(src.get("l2"), (int, float)) and src["l2"] < 0:
            raise RecipeError("'source.l2' must be >= 0.", key="source.l2")
    elif isinstance(src, dict):
        cps = src["checkpoints"]
        if not isinstance(cps, list) or not all(isinstance(c, str) and c for c in cps):
            raise RecipeError("'source.checkpoints' must be a list of paths (globs).", key="source.checkpoints")
        for key in ("domain", "network", "protocol"):
            _str(src, key, "source.")
    h = data["harvest"]
    if isinstance(h, dict):
        _str(h, "layer", "harvest.")
        _int(h, "kernel_size", "harvest", 1, 15)
        _int(h, "seed", "harvest", 0)
        if h.get("max_kernels_per_net") is not None:
            _int(h, "max_kernels_per_net", "harvest", 1)
        if "balance" in h and not isinstance(h["balance"], bool):
            raise RecipeError(f"'harvest.balance' must be true or false, got {_short(repr(h['balance']), 40)}.",
                              key="harvest.balance")
        held = h.get("held_out", [])
        if not isinstance(held, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 10_000
                                                 for i in held):
            raise RecipeError("'harvest.held_out' must be a list of network indices (integers >= 0).",
                              key="harvest.held_out")
        if isinstance(h.get("prune"), dict):
            _num(h["prune"], "value", "harvest.prune")
    fit = data.get("fit", {})
    if isinstance(fit, dict):
        for key, lo, hi in (("epochs", 1, 1_000_000), ("batch_size", 1, 1 << 24), ("seed", 0, _MAX_INT),
                            ("iw_k", 1, 1_000_000), ("iw_max_kernels", 1, 1 << 24)):
            _int(fit, key, "fit", lo, hi)
        _num(fit, "lr", "fit", positive=True)
    vae = data["vae"]
    if isinstance(vae, dict):
        for key in ("z_dim", "hidden", "kernel_size"):
            _int(vae, key, "vae", 1, 4096)
        for key in ("kind", "activation"):
            _str(vae, key, "vae.")


def _take(d: dict[str, Any], cls: type, where: str, **conv: Any) -> Any:
    if not isinstance(d, dict):
        raise RecipeError(f"'{where}' must be a mapping.", key=where)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        listed = ", ".join(sorted(_short(k, 40) for k in unknown))[:300]
        raise RecipeError(f"Unknown key(s) in '{where}': {listed}. Allowed: {', '.join(sorted(names))}.", key=where)
    try:
        kwargs = {k: conv[k](v) if k in conv else v for k, v in d.items()}
        return cls(**kwargs)
    except (TypeError, ValueError, CardError, DwpHubError) as err:
        if isinstance(err, RecipeError):
            raise
        raise RecipeError(f"Bad '{where}': {str(err)[:300]}", key=where) from err


def parse_recipe(data: dict[str, Any], path: Path | None = None) -> Recipe:
    """Validate a recipe mapping."""
    if not isinstance(data, dict):
        raise RecipeError("A recipe must be a YAML mapping.")
    for key in ("name", "version", "source", "harvest", "vae"):
        if key not in data:
            raise RecipeError(f"Recipe is missing '{key}'.")
    allowed = {"name", "version", "description", "source", "harvest", "vae", "fit", "reference_elbo", "status",
               "transfer", "license", "license_name", "license_link"}
    if set(data) - allowed:
        listed = ", ".join(sorted(_short(k, 40) for k in set(data) - allowed))[:300]
        raise RecipeError(f"Unknown recipe key(s): {listed}. Allowed: {', '.join(sorted(allowed))}.")
    _validate_values(data)  # touches only known keys (no alias expansion); names the key at fault
    _check_size(data)
    status = data.get("status")
    if status is not None and status not in RECIPE_STATUSES:
        raise RecipeError(f"Recipe status {_short(status)} is not one of: {', '.join(map(repr, RECIPE_STATUSES))}.")
    validate_name(data["name"])
    Version.parse(data["version"])
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
    transfer = None
    if data.get("transfer") is not None:
        from dwp_hub.training.transfer import TransferSpec

        if arch.kernel_size not in (5, 7):
            raise RecipeError("'transfer' is measured on the paper's 7x7/5x5 net; remove it for "
                              f"{arch.kernel_size}x{arch.kernel_size} priors.", key="transfer")
        transfer = _take(data["transfer"], TransferSpec, "transfer", seeds=tuple)
    try:
        lic = merge_license((DEFAULT_LICENSE, None, None), data.get("license", DEFAULT_LICENSE),
                            data.get("license_name"), data.get("license_link"))
    except CardError as err:
        raise RecipeError(str(err), key=(err.field or "card.license").removeprefix("card.")) from None
    return Recipe(str(data["name"]), str(data["version"]), str(data.get("description", "")), source, harvest,
                  arch, fit, data.get("reference_elbo"), data, path, status=status, transfer=transfer,
                  license=lic[0], license_name=lic[1], license_link=lic[2])


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML file."""
    import yaml

    from dwp_hub._fs import NotRegularFileError, open_regular

    path = Path(path)
    try:
        with open_regular(path) as fh:
            raw = fh.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError as err:
        raise RecipeError(f"Recipe {path} does not exist.", path=path) from err
    except NotRegularFileError as err:
        raise RecipeError(f"Recipe {path} is {err.strerror}; give the path of a YAML file.", path=path) from err
    except OSError as err:
        raise RecipeError(f"Cannot read recipe {path}: {err.strerror or err}.", path=path) from err
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"Recipe {path} is larger than {MAX_RECIPE_BYTES} bytes; a recipe is a short YAML file.",
                          path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"Recipe {path} is not UTF-8 text (byte {err.start}); save it as UTF-8.", path=path) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(f"Recipe {path} is not valid YAML: {str(err)[:300]}", path=path) from err
    except RecursionError as err:
        raise RecipeError(f"Recipe {path} is nested too deeply.", path=path) from err
    try:
        return parse_recipe(data, path)
    except RecipeError as err:
        if err.path is not None:
            raise
        raise RecipeError(f"{path}: {err}", path=path, key=err.key) from err


def _source_timing(checkpoints: list[Path], existed: set[str], seconds: float, workers: int,
                   device: str) -> dict[str, Any]:
    """What training the source nets cost, for the card's from-scratch build figures.

    Nets this build trained are timed by the wall clock. Nets found already trained (another build or a
    study filled the same cache) cost what their checkpoints record (``train_seconds``), spread over the
    build's workers: without that, a build on a warm cache would claim its source nets took no time."""
    from dwp_hub.training.harvest import read_checkpoint

    reused = [p for p in checkpoints if Path(p).name in existed]
    record: dict[str, Any] = {"seconds": seconds, "peak_memory_mb": _peak_mb(), "workers": workers, "device": device}
    if reused:
        recorded = [float(read_checkpoint(p)[1].get("train_seconds", 0.0)) for p in reused]
        record["seconds"] = seconds + sum(recorded) / max(1, workers)
        record["reused_nets"] = len(reused)
        record["reused_train_seconds"] = round(sum(recorded), 1)
    return record


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def build(recipe: Recipe, to: str | Path, work_dir: str | Path | None = None, workers: int = 1,
          progress: bool = True, publish_it: bool = True, device: Any = None) -> Path:
    """Run the whole chain for ``recipe`` and publish into ``to``; return the version folder
    (or the staging folder when ``publish_it`` is false).

    Source networks are cached in ``work_dir`` by a hash of their recipe, so priors that share
    source networks (7x7 and 5x5 of the same nets) train them once; the time and peak memory of
    that training are recorded beside them and added to the build figures in the card.

    ``device`` (default: the CPU) is where the source networks and the VAE train. It is not part of
    the recipe: not of its cache keys (networks trained on a GPU are reused on the CPU and back)
    nor of the card, and results differ between devices only by float rounding. The transfer
    benefit (``transfer:``), when the recipe asks for it, is measured on the CPU.
    """
    from dwp_hub._device import resolve_device
    from dwp_hub.training.fit import fit_vae
    from dwp_hub.training.harvest import data_licenses, harvest, network_label
    from dwp_hub.training.publish import make_card, publish, source_info, write_version_folder
    from dwp_hub.training.source import source_dir, train_sources

    dev = resolve_device(device)  # a device this machine lacks: refused before any work
    if publish_it and not str(to).startswith("hf-hub:"):  # refuse an existing version before any work
        from dwp_hub.errors import PriorExistsError
        from dwp_hub.registry import LocalRegistry

        if Path(to).is_dir() and recipe.version in {str(v) for v in LocalRegistry(to).versions(recipe.name)}:
            raise PriorExistsError(f"{recipe.name}@{recipe.version} already exists in {to}; versions are immutable. "
                                   "Raise the recipe's version to build a new one.")
    work = Path(work_dir) if work_dir is not None else constants.home() / "work"
    start = time.perf_counter()
    source_seconds, source_peak = 0.0, 0.0
    if isinstance(recipe.source, SourceRecipe):
        sdir = source_dir(recipe.source, work)
        timing = sdir / "timing.json"
        t0 = time.perf_counter()
        existed = {p.name for p in sdir.glob("*.safetensors")} if sdir.is_dir() else set()
        checkpoints = train_sources(recipe.source, sdir, workers=workers, progress=progress, device=dev)
        if not timing.is_file():
            timing.write_text(json.dumps(_source_timing(checkpoints, existed, time.perf_counter() - t0, workers,
                                                        str(dev))))
        record = json.loads(timing.read_text())
        source_seconds, source_peak = float(record["seconds"]), float(record["peak_memory_mb"])
        start = time.perf_counter()  # source time is counted from its own record
        src_recipe = recipe.source
        domain, network = src_recipe.dataset, network_label(src_recipe.net)
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
    data.meta["data_licenses"] = data_licenses(domain, data.meta["sources"])
    if len(data.train) < recipe.harvest.min_kernels or len(data.held_out) == 0 and recipe.harvest.held_out:
        kept = data.meta["kernels_kept"]
        raise RecipeError(
            f"Pruning kept {kept} of {data.meta['kernels_total']} kernels ({len(data.train)} for training, "
            f"{len(data.held_out)} held out; {recipe.harvest.prune.describe()}): this recipe needs at least "
            f"{recipe.harvest.min_kernels} training kernels (harvest.min_kernels) and a held-out kernel. Lower "
            "harvest.prune.value, train more source nets (source.n_nets), or train them longer.",
            key="harvest.prune")
    result = fit_vae(data, recipe.arch, recipe.fit, progress=progress, reference_elbo=recipe.reference_elbo,
                     device=dev)
    build_seconds = round(time.perf_counter() - start + source_seconds, 1)
    transfer = None
    if recipe.transfer is not None:  # after the build figures: the benefit is an evaluation, not the build
        from dwp_hub.training.transfer import evaluate_transfer

        transfer = evaluate_transfer(result.vae, recipe.arch.kernel_size, recipe.transfer).to_card()
    rebuild = f"dwp-hub build {recipe.path if recipe.path else 'recipe.yaml'} --to DIR"
    card = make_card(result, data, recipe.arch, recipe.fit, name=recipe.name, version=recipe.version,
                     description=recipe.description, source=source_info(data, domain, network),
                     recipe={**recipe.raw, "rebuild": rebuild},
                     build_seconds=build_seconds, build_peak_memory_mb=round(max(_peak_mb(), source_peak), 1),
                     license=recipe.license, license_name=recipe.license_name, license_link=recipe.license_link)
    if transfer is not None:
        import dataclasses

        card = dataclasses.replace(card, transfer=transfer)
    staging = work / f"fit-{recipe.name}-{recipe.version}"
    text = recipe.path.read_text("utf-8") if recipe.path is not None else None  # validated by load_recipe
    write_version_folder(staging, result.vae, card, data.held_out if len(data.held_out) else data.train, recipe=text)
    if not publish_it:
        return staging
    published = publish(staging, recipe.name, recipe.version, to, recipe.description)
    return published.path if published.path is not None else published.ref  # the Hub: hf-hub:ORG/REPO@vX.Y.Z
