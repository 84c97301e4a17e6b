"""Harvest per-layer kernel datasets from source checkpoints.

Reads the project's own safetensors checkpoints and third-party torch state dicts (only ever
through ``torch.load(..., weights_only=True)``), selects conv layers by name pattern and kernel
size, prunes near-zero kernels by a recorded rule, and splits train / held-out **by source
network**.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from dwp_hub import constants
from dwp_hub._fs import NotRegularFileError, atomic_path, open_regular, sha256_file
from dwp_hub.errors import CheckpointError, ConfigError, DataIntegrityError, DwpHubError, UnsupportedLayerError
from dwp_hub.model.nets import NetConfig
from dwp_hub.training._ckpt import SOURCE_META_KEY

#: Header key of a kernel dataset's metadata.
KERNELS_META_KEY = "dwp_hub.kernels"
#: Kernel sizes the kernel VAE supports.
SUPPORTED_KERNEL_SIZES = (3, 5, 7)
#: A zip member that inflates more than this many times (and past 1 MiB) is a zip bomb: torch
#: stores tensors uncompressed, so real checkpoints are close to 1.
MAX_COMPRESSION_RATIO = 100


_AKAMASTER = {"dataset": "CIFAR-10 ResNet-20/32/44/56 checkpoints (akamaster/pytorch_resnet_cifar10)",
              "license": "BSD-2-Clause", "source_url": "https://github.com/akamaster/pytorch_resnet_cifar10"}
#: Third-party source checkpoints known by their sha256: where they come from and their licence, which a
#: harvest of them records in the card's ``data_licenses``.
KNOWN_CHECKPOINTS: dict[str, dict[str, str]] = {
    "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8": _AKAMASTER,  # resnet20-12fca82f.th
    "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850": _AKAMASTER,  # resnet32-d509ac18.th
    "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4": _AKAMASTER,  # resnet44-014dd654.th
    "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367": _AKAMASTER,  # resnet56-4bfd9763.th
}


def data_licenses(dataset: str | None, sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Licences of the data kernels harvested from ``sources`` (``meta["sources"]``) come from, as the card's
    ``data_licenses`` records them: the source dataset's (``dataset``: a dataset :mod:`dwp_hub.data` knows,
    e.g. ``mnist``; others are not recorded), then those of known third-party checkpoints
    (:data:`KNOWN_CHECKPOINTS`), each once."""
    from dwp_hub.data import CIFAR_DATASETS, DATASETS

    out: list[dict[str, str]] = []
    if dataset in DATASETS:
        spec = DATASETS[dataset]
        out.append({"dataset": dataset, "license": spec.license,
                    "source_url": spec.images.urls[0].rsplit("/", 1)[0] + "/" if spec.images.urls else ""})
    elif dataset in CIFAR_DATASETS:
        cifar = CIFAR_DATASETS[dataset]
        out.append({"dataset": dataset, "license": cifar.license, "source_url": cifar.url})
    for s in sources:
        known = KNOWN_CHECKPOINTS.get(s.get("sha256", "")) if isinstance(s, dict) else None
        if known is not None and known not in out:
            out.append(dict(known))
    return out


def _check_checkpoint_size(path: Path) -> None:
    """Refuse, before unpacking, a checkpoint larger than the cap once uncompressed, or a zip bomb."""
    cap = constants.max_checkpoint_bytes()
    hint = "Set DWP_HUB_MAX_CHECKPOINT_MB to raise the limit if the checkpoint is genuine."
    try:
        with open_regular(path) as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            if size > cap:
                raise CheckpointError(f"{path} is {size / 2**20:.0f} MiB, over the {cap / 2**20:.0f} MiB limit. {hint}")
            if not zipfile.is_zipfile(fh):
                return
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
    except CheckpointError:
        raise
    except NotRegularFileError as err:
        raise CheckpointError(f"Checkpoint {path} is {err.strerror}; give a checkpoint file.") from err
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise CheckpointError(f"{path} could not be read as a checkpoint ({type(err).__name__}).") from err
    total = sum(i.file_size for i in infos)
    if total > cap:
        raise CheckpointError(f"{path} unpacks to {total / 2**20:.0f} MiB, over the {cap / 2**20:.0f} MiB limit. {hint}")
    for i in infos:
        if i.file_size > (1 << 20) and i.file_size > MAX_COMPRESSION_RATIO * max(i.compress_size, 1):
            raise CheckpointError(
                f"{path} looks like a zip bomb: {i.filename[:80]!r} inflates {i.file_size // max(i.compress_size, 1)}x "
                f"({i.compress_size} -> {i.file_size} bytes). Torch checkpoints store tensors uncompressed; refusing it."
            )


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint's tensors and metadata without ever unpickling arbitrary objects.

    ``.safetensors`` files are read directly; anything else goes through
    ``torch.load(map_location="cpu", weights_only=True)``. A ``{"state_dict": ...}`` wrapper
    and a ``module.`` prefix (DataParallel) are unwrapped.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    _check_checkpoint_size(path)  # regular file, under the size cap, no zip bomb
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
            with safe_open(str(path), "pt") as fh:
                header = fh.metadata() or {}
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"{path} is not a readable safetensors file ({err}).") from err
        try:
            meta = json.loads(header.get(SOURCE_META_KEY, "{}"))
        except (ValueError, RecursionError) as err:
            raise CheckpointError(f"{path}: the {SOURCE_META_KEY!r} header entry is not valid JSON. Re-save the "
                                  "checkpoint (dwp-hub train-source writes it).") from err
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: the {SOURCE_META_KEY!r} header entry must be a JSON object.")
        return state, meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). It may be truncated, corrupt, or hold "
            "pickled code; dwp-hub never loads pickles beyond plain tensors."
        ) from err
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        meta = {k: v for k, v in obj.items() if k != "state_dict" and isinstance(v, (int, float, str))}
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors.")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state, meta


@dataclass(frozen=True)
class PruneRule:
    """Which kernels are kept.

    ``rule="min_norm"``: keep kernels whose L2 norm is at least ``value``.
    ``rule="top_fraction"``: keep the ``value`` fraction of largest-norm kernels (per layer, pooled
    over networks).
    ``rule="none"``: keep everything.
    """

    rule: str = "min_norm"
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.rule not in ("min_norm", "top_fraction", "none"):
            raise ConfigError(f"Unknown prune rule {self.rule!r}; use min_norm, top_fraction or none.")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise ConfigError(f"Prune value must be a number, got {self.value!r}.")

    def describe(self) -> str:
        if self.rule == "min_norm":
            return f"keep kernels with L2 norm >= {self.value:g}"
        if self.rule == "top_fraction":
            return f"keep the top {self.value:.1%} of kernels by L2 norm"
        return "keep all kernels"


@dataclass(frozen=True)
class HarvestSpec:
    """What to harvest: a layer-name pattern (fnmatch on ``<name>.weight``), a kernel size,
    the prune rule, and which source networks are held out."""

    layer: str
    kernel_size: int
    prune: PruneRule = field(default_factory=PruneRule)
    held_out: tuple[int, ...] = ()
    max_kernels_per_net: int | None = None
    seed: int = 0
    #: Fewest training kernels a build will fit a VAE to (fewer: a clear error saying what to change).
    min_kernels: int = 32
    #: Balance each source net first (:mod:`dwp_hub.training.balance`): the function-preserving rescaling of
    #: the units between two convolutions that minimises the L2 term. Needs checkpoints that record their net.
    balance: bool = False


@dataclass
class KernelDataset:
    """Kernels ``[N, 1, k, k]`` split by source network, plus provenance."""

    train: torch.Tensor
    held_out: torch.Tensor
    meta: dict[str, Any]

    def save(self, path: str | Path) -> None:
        """Write as safetensors (atomic) with the metadata as JSON in the header."""
        with atomic_path(path) as tmp:
            save_file({"train": self.train.contiguous(), "held_out": self.held_out.contiguous()},
                      str(tmp), metadata={KERNELS_META_KEY: json.dumps(self.meta, sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> KernelDataset:
        path = Path(path)
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as fh:
                meta = json.loads((fh.metadata() or {})[KERNELS_META_KEY])
        except (SafetensorError, OSError, KeyError, ValueError) as err:
            raise DataIntegrityError(f"{path} is not a dwp-hub kernel dataset ({err}).") from err
        return cls(tensors["train"], tensors["held_out"], meta)


def _select(state: dict[str, torch.Tensor], spec: HarvestSpec, source: Path) -> tuple[list[str], torch.Tensor]:
    names = [n for n, t in state.items()
             if t.ndim == 4 and fnmatch.fnmatchcase(n, spec.layer)]
    if not names:
        convs = [n for n, t in state.items() if t.ndim == 4]
        raise CheckpointError(
            f"No conv weight in {source.name} matches {spec.layer!r}. Conv weights there: "
            f"{', '.join(convs[:12]) or 'none'}{' ...' if len(convs) > 12 else ''}."
        )
    kept = [n for n in names if tuple(state[n].shape[-2:]) == (spec.kernel_size, spec.kernel_size)]
    if not kept:
        shapes = {n: tuple(state[n].shape) for n in names[:6]}
        raise CheckpointError(
            f"Layers matching {spec.layer!r} in {source.name} have no {spec.kernel_size}x"
            f"{spec.kernel_size} kernels: {shapes}."
        )
    kernels = torch.cat([state[n].reshape(-1, 1, spec.kernel_size, spec.kernel_size) for n in kept])
    return kept, kernels.float()


def _balance(state: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], Any]:
    """``state`` balanced (:func:`dwp_hub.training.balance.balance_state`) for the net its checkpoint records."""
    from dwp_hub.model.nets import build_net
    from dwp_hub.training.balance import balance_state

    recipe = meta.get("recipe")
    try:
        config = NetConfig.from_dict(recipe["net"])  # type: ignore[index]
    except (KeyError, TypeError, DwpHubError):
        raise CheckpointError(
            f"{path.name} does not record its network (a dwp-hub train-source checkpoint does), and balancing "
            "needs it to know which layers a rescaling passes between. Drop harvest.balance for these "
            "checkpoints.") from None
    return balance_state(state, build_net(config))


def network_label(net: NetConfig) -> str:
    """How a card names the source network of a recipe, e.g. ``fconv(64,32)``."""
    return f"{net.arch}{tuple(net.widths)}".replace(" ", "")


def _portable(path: Path) -> str:
    """A checkpoint path as a recipe names it: under the data root relative to it (as ``build`` reads it),
    else absolute; glob characters escaped (``build`` expands the names as patterns)."""
    full = path.resolve()
    try:
        return glob.escape(str(full.relative_to(constants.data_root().resolve())))
    except ValueError:
        return glob.escape(str(full))


def _provenance(paths: list[Path], metas: list[dict[str, Any]], spec: HarvestSpec, domain: str | None,
                network: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Where the kernels came from (``meta["source"]``: what the card's ``source`` says) and the recipe of
    the chain so far (``meta["recipe"]``: its ``source`` and ``harvest`` sections, for ``fit`` to complete).

    Checkpoints written by ``train-source`` carry their ``SourceRecipe``; when every one carries
    the same recipe and they are its nets 0, 1, ... in order (and no ``domain`` / ``network`` overrides
    it), the recipe's source is that recipe (``n_nets``: how many were harvested), so ``dwp-hub build``
    trains the very same nets. Otherwise it names the checkpoint files, as a recipe for existing
    checkpoints does.
    """
    first = metas[0]
    trained = first.get("recipe")  # a SourceRecipe as a dict (source.py imports this module: no import back)
    label = None
    if isinstance(trained, dict) and isinstance(trained.get("dataset"), str) and isinstance(trained.get("n_nets"), int):
        try:
            label = network_label(NetConfig.from_dict(trained["net"]))
        except (KeyError, TypeError, DwpHubError):
            trained = None
    else:
        trained = None
    dataset = domain or (trained["dataset"] if trained is not None else None)
    net = network or label
    protocol = first.get("split") if isinstance(first.get("split"), str) else ""
    sha = first.get("dataset_sha256") if isinstance(first.get("dataset_sha256"), str) else ""
    source = {k: v for k, v in (("dataset", dataset), ("dataset_sha256", sha), ("network", net),
                                ("protocol", protocol)) if v}
    same = (trained is not None and domain is None and network is None
            and all(m.get("recipe") == trained for m in metas)
            and [m.get("index") for m in metas] == list(range(len(metas))) and len(metas) <= trained["n_nets"])
    if same:
        assert trained is not None
        recipe_source: dict[str, Any] = {**trained, "n_nets": len(metas)}
    else:
        recipe_source = {"checkpoints": [_portable(p) for p in paths], "domain": dataset or "unknown",
                         "network": net or "unknown", **({"protocol": protocol} if protocol else {})}
    recipe_harvest = {"layer": spec.layer, "kernel_size": spec.kernel_size,
                      "prune": {"rule": spec.prune.rule, "value": spec.prune.value}, "held_out": list(spec.held_out),
                      **({"max_kernels_per_net": spec.max_kernels_per_net} if spec.max_kernels_per_net else {}),
                      "seed": spec.seed, **({"balance": True} if spec.balance else {})}
    return source, {"source": recipe_source, "harvest": recipe_harvest}


def harvest(checkpoints: list[str | Path], spec: HarvestSpec, *, domain: str | None = None,
            network: str | None = None) -> KernelDataset:
    """Build a kernel dataset from ``checkpoints`` according to ``spec``.

    The dataset's metadata records the provenance the next steps need (see :func:`_provenance`): the
    source (``domain`` and ``network`` name it for checkpoints that do not say, e.g. third-party ones)
    and the recipe so far, so that ``fit`` and ``publish`` write the card ``dwp-hub build`` would.
    """
    if spec.kernel_size not in SUPPORTED_KERNEL_SIZES:
        raise UnsupportedLayerError(
            f"Kernel size {spec.kernel_size} is not supported; the kernel VAE has architectures "
            f"for {', '.join(map(str, SUPPORTED_KERNEL_SIZES))}."
        )
    if not checkpoints:
        raise CheckpointError("No checkpoints given to harvest from.")
    paths = [Path(p) for p in checkpoints]
    bad_held = [i for i in spec.held_out if not 0 <= i < len(paths)]
    if bad_held:
        raise CheckpointError(f"Held-out network indices {bad_held} are out of range: there are {len(paths)} "
                              f"checkpoints (indices 0 to {len(paths) - 1}).")
    per_net, sources, layers, metas, balanced = [], [], None, [], []
    for path in paths:
        state, meta = read_checkpoint(path)
        metas.append(meta)
        if spec.balance:
            state, report = _balance(state, meta, path)
            balanced.append(report)
        names, kernels = _select(state, spec, path)
        layers = layers or names
        per_net.append(kernels)
        sources.append({"file": path.name, "sha256": sha256_file(path),
                        **({"val_accuracy": meta["val_accuracy"]} if "val_accuracy" in meta else {}),
                        **({"best_prec1": meta["best_prec1"]} if "best_prec1" in meta else {})})
    if not all(torch.isfinite(k).all() for k in per_net):
        raise CheckpointError("A checkpoint holds NaN or inf kernels; retrain or drop it.")
    empty = [p.name for p, k in zip(paths, per_net) if len(k) == 0]
    if empty:
        raise CheckpointError(f"Layers matching {spec.layer!r} hold zero kernels in {', '.join(empty)[:300]}; "
                              "check --layer and the checkpoints.")
    norms_all = torch.cat([k.flatten(1).norm(dim=1) for k in per_net])
    if spec.prune.rule == "min_norm":
        threshold = spec.prune.value
    elif spec.prune.rule == "top_fraction":
        if not 0 < spec.prune.value <= 1:
            raise CheckpointError(f"The top fraction of kernels to keep must be in (0, 1], got {spec.prune.value}.")
        threshold = float(torch.quantile(norms_all, 1 - spec.prune.value)) if len(norms_all) else 0.0
    elif spec.prune.rule == "none":
        threshold = float("-inf")
    else:
        raise CheckpointError(f"Unknown prune rule {spec.prune.rule!r}; use min_norm, top_fraction or none.")
    gen = torch.Generator().manual_seed(spec.seed)
    train, held = [], []
    for i, k in enumerate(per_net):
        k = k[k.flatten(1).norm(dim=1) >= threshold]
        if spec.max_kernels_per_net is not None and len(k) > spec.max_kernels_per_net:
            k = k[torch.randperm(len(k), generator=gen)[: spec.max_kernels_per_net]]
        (held if i in spec.held_out else train).append(k)
    train_t = torch.cat(train) if train else torch.empty(0, 1, spec.kernel_size, spec.kernel_size)
    held_t = torch.cat(held) if held else torch.empty(0, 1, spec.kernel_size, spec.kernel_size)
    if len(train_t) == 0:
        raise CheckpointError(
            f"No kernels left after pruning ({spec.prune.describe()}; max norm seen "
            f"{float(norms_all.max()):.4g}). Lower the threshold."
        )
    meta = {
        "layer_pattern": spec.layer,
        "layers": layers,
        "kernel_size": spec.kernel_size,
        "prune": {**asdict(spec.prune), "threshold": threshold, "description": spec.prune.describe()},
        "kernels_total": len(norms_all),
        "kernels_kept": int(len(train_t) + len(held_t)),
        "n_train": len(train_t),
        "n_held_out": len(held_t),
        "held_out_nets": list(spec.held_out),
        "max_kernels_per_net": spec.max_kernels_per_net,
        "sources": sources,
    }
    if balanced:
        meta["balance"] = {
            "pairs": [list(p) for p in balanced[0].pairs], "max_sweeps": max(r.sweeps for r in balanced),
            "max_imbalance": max(r.max_imbalance for r in balanced),
            "l2_term_before": round(sum(r.penalty_before for r in balanced) / len(balanced), 6),
            "l2_term_after": round(sum(r.penalty_after for r in balanced) / len(balanced), 6),
            "description": "each source net rescaled (function-preserving) so every hidden unit between two "
                           "convolutions has equal incoming and outgoing L2 norms; l2_term_*: mean over nets "
                           "of the summed squared conv parameters",
        }
    meta["source"], meta["recipe"] = _provenance(paths, metas, spec, domain, network)
    meta["data_licenses"] = data_licenses(meta["source"].get("dataset"), sources)
    return KernelDataset(train_t, held_t, meta)
