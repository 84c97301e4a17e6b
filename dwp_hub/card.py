"""The prior card: typed metadata that describes a prior and rebuilds its VAE.

The card travels inside ``model.safetensors`` (JSON in the metadata header, with a schema
version) and is rendered to ``README.md`` as a Hugging Face model card. This module never
imports torch, so ``dwp-hub list`` / ``info`` stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dwp_hub.constants import CARD_METADATA_KEY, CARD_SCHEMA_VERSION, SCHEMA_METADATA_KEY
from dwp_hub.errors import CardError, IntegrityError

T = TypeVar("T")

#: Architectures of the kernel VAE (see :mod:`dwp_hub.model.vae`).
VAE_KINDS = ("conv7", "conv5", "mlp")
#: Hidden-layer activations a kernel VAE may use (the paper's is ELU).
ACTIVATIONS = ("elu", "relu")


@dataclass(frozen=True)
class ArchConfig:
    """Kernel VAE architecture: enough to rebuild the module.

    Attributes:
        kind: ``conv7`` / ``conv5`` (the paper's Table 1) or ``mlp`` (dwp-hub's 3x3 design).
        kernel_size: side of the square kernels.
        z_dim: latent dimension.
        hidden: base hidden width (32 for the paper's 7x7, 64 for 5x5).
        activation: hidden-layer activation, ``"elu"`` (the paper's; the default, and what a card
            without this field means) or ``"relu"`` (cheaper to sample: no ``exp``).
    """

    kind: str
    kernel_size: int
    z_dim: int
    hidden: int
    activation: str = "elu"

    def __post_init__(self) -> None:
        if self.kind not in VAE_KINDS:
            raise CardError(f"Unknown VAE kind {self.kind!r}; expected one of {VAE_KINDS}.")
        if self.kind == "conv7" and self.kernel_size != 7:
            raise CardError("kind 'conv7' needs kernel_size 7.")
        if self.kind == "conv5" and self.kernel_size != 5:
            raise CardError("kind 'conv5' needs kernel_size 5.")
        if self.activation not in ACTIVATIONS:
            raise CardError(f"Unknown activation {self.activation!r}; expected one of {ACTIVATIONS}.")
        if not (1 <= self.kernel_size <= 15 and 1 <= self.z_dim <= 256 and 1 <= self.hidden <= 4096):
            raise CardError(f"Architecture sizes out of range: {self}.")


@dataclass(frozen=True)
class SourceInfo:
    """Where the kernels came from."""

    domain: str
    dataset_sha256: str
    network: str
    layer: str
    n_networks: int
    held_out_networks: list[int]
    protocol: str = ""
    checkpoints: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class KernelsInfo:
    """How many kernels were harvested and kept, and the pruning rule."""

    total: int
    kept: int
    n_train: int
    n_held_out: int
    prune_rule: str
    prune_threshold: float


@dataclass(frozen=True)
class TrainingInfo:
    """The VAE training recipe and what the run cost."""

    epochs: int
    lr: float
    batch_size: int
    seed: int
    schedule: str = "linear decay to 0"
    loss: str = "sum over batch of -log p(w|z) + KL(r(z|w) || N(0, I))"
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    device: str = "cpu"
    threads: int = 1
    torch_version: str = ""
    build_seconds: float | None = None
    build_peak_memory_mb: float | None = None


@dataclass(frozen=True)
class Metrics:
    """Held-out quality in nats per kernel (higher is better)."""

    heldout_elbo: float
    heldout_iw_log_likelihood: float
    iw_k: int
    train_elbo: float
    n_heldout_kernels: int
    n_iw_kernels: int = 0
    reference_elbo: float | None = None


@dataclass(frozen=True)
class KernelStats:
    """Statistics of the kept kernels (train split)."""

    mean: float
    std: float
    norm_quantiles: dict[str, float]


@dataclass(frozen=True)
class PriorCard:
    """Everything known about one published prior version."""

    name: str
    version: str
    description: str
    arch: ArchConfig
    source: SourceInfo
    kernels: KernelsInfo
    training: TrainingInfo
    metrics: Metrics
    kernel_stats: KernelStats
    weights_sha256: str
    created: str
    dwp_hub_version: str
    license: str = "MIT"
    citation: str = (
        "Atanov, Ashukha, Struminsky, Vetrov, Welling. The Deep Weight Prior. ICLR 2019. "
        "arXiv:1810.06943"
    )
    recipe: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA_VERSION

    @property
    def kernel_size(self) -> int:
        return self.arch.kernel_size

    @property
    def z_dim(self) -> int:
        return self.arch.z_dim

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["arch"]["activation"] == "elu":  # the default: cards stay readable by dwp-hub 0.1.0
            del d["arch"]["activation"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PriorCard:
        """Build and validate a card; raises :class:`CardError` naming the bad field."""
        if not isinstance(data, dict):
            raise CardError("A card must be a JSON object.")
        schema = data.get("schema_version")
        if schema != CARD_SCHEMA_VERSION:
            raise CardError(
                f"Card schema version {schema!r} is not supported (this dwp-hub reads "
                f"{CARD_SCHEMA_VERSION}). Upgrade dwp-hub."
            )
        return _build(cls, data, "card")

    @classmethod
    def from_json(cls, text: str) -> PriorCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CardError(f"Card is not valid JSON: {err}") from err
        return cls.from_dict(data)


_NESTED = {"arch": ArchConfig, "source": SourceInfo, "kernels": KernelsInfo, "training": TrainingInfo,
           "metrics": Metrics, "kernel_stats": KernelStats}
_SCALARS = {"int": int, "float": (int, float), "str": str, "bool": bool}


def _check_type(value: Any, annotation: str, where: str) -> None:
    base = annotation.replace(" | None", "")
    if value is None and "None" in annotation:
        return
    if base in _SCALARS:
        ok = isinstance(value, _SCALARS[base]) and not (base != "bool" and isinstance(value, bool))
    elif base.startswith("list"):
        ok = isinstance(value, list)
    elif base.startswith("dict"):
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        raise CardError(f"Card field {where} should be {annotation}, got {type(value).__name__}.")


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise CardError(f"Card field {where} should be an object.")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise CardError(f"Unknown card field(s) in {where}: {', '.join(sorted(unknown))}. If the prior was "
                        "published by a newer dwp-hub, upgrade: pip install -U dwp-hub.")
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CardError(f"Card is missing required field {where}.{name}.")
            continue
        value = data[name]
        if name in _NESTED and cls is PriorCard:
            value = _build(_NESTED[name], value, f"{where}.{name}")
        else:
            _check_type(value, str(f.type), f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise CardError(f"Bad card field in {where}: {err}") from err


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Parse a safetensors file's JSON header without torch (8-byte length + JSON)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise IntegrityError(f"{path.name} is truncated (no safetensors header).")
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise IntegrityError(f"{path.name} has an implausible header length {n}.")
            raw = fh.read(n)
    except FileNotFoundError as err:
        raise IntegrityError(f"{path} is missing.") from err
    if len(raw) != n:
        raise IntegrityError(f"{path.name} is truncated (header).")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IntegrityError(f"{path.name} has a corrupt header: {err}") from err
    if not isinstance(header, dict):
        raise IntegrityError(f"{path.name} has a corrupt header.")
    return header


def card_from_weights_file(path: str | Path) -> PriorCard:
    """Read the card out of a ``model.safetensors`` header (no torch import)."""
    meta = read_safetensors_header(path).get("__metadata__") or {}
    if CARD_METADATA_KEY not in meta:
        raise CardError(f"{Path(path).name} carries no dwp-hub card in its metadata header.")
    if meta.get(SCHEMA_METADATA_KEY) != str(CARD_SCHEMA_VERSION):
        raise CardError(
            f"{Path(path).name} was written with card schema {meta.get(SCHEMA_METADATA_KEY)!r}; "
            f"this dwp-hub reads {CARD_SCHEMA_VERSION}."
        )
    try:
        return PriorCard.from_json(meta[CARD_METADATA_KEY])
    except CardError as err:
        raise CardError(f"{Path(path).name}: {err}") from err
