"""The prior card: typed metadata that describes a prior and rebuilds its VAE.

The card travels inside ``model.safetensors`` (JSON in the metadata header, with a schema
version) and is rendered to ``README.md`` as a Hugging Face model card. This module never
imports torch, so ``dwp-hub list`` / ``info`` stay fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dwp_hub._fs import NotRegularFileError, open_regular
from dwp_hub.constants import CARD_METADATA_KEY, CARD_SCHEMA_VERSION, SCHEMA_METADATA_KEY
from dwp_hub.errors import CardError, IntegrityError

T = TypeVar("T")

#: Architectures of the kernel VAE (see :mod:`dwp_hub.model.vae`).
VAE_KINDS = ("conv7", "conv5", "mlp")
#: Hidden-layer activations a kernel VAE may use (the paper's is ELU).
ACTIVATIONS = ("elu", "relu")
#: What ``weights_sha256`` covers. ``"tensors"``: the tensors only (cards published before
#: dwp-hub bound the architecture into the hash); ``"tensors+arch"``: the tensors and every
#: field that changes the computation (``arch``), see :func:`bound_weights_sha256`.
WEIGHTS_SCOPES = ("tensors", "tensors+arch")
#: The scope every new card is written with.
WEIGHTS_SCOPE = "tensors+arch"
#: Largest nesting depth of free-form card fields (``recipe``, ``source.checkpoints``).
MAX_CARD_DEPTH = 32
#: Integers in a card must fit in 64 bits.
_MAX_INT = 2**63
#: Most entries of a card's ``data_licenses``.
MAX_DATA_LICENSES = 64
#: Licence identifiers the Hugging Face Hub accepts in a model card's ``license`` (its list at
#: https://huggingface.co/docs/hub/repositories-licenses). ``other`` needs a ``license_name``.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "eupl-1.2", "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc",
    "h-research", "intel-research", "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl",
    "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr",
    "deepfloyd-if-license", "fair-noncommercial-research-license", "llama2", "llama3", "llama3.1", "llama3.2",
    "llama3.3", "llama4", "gemma", "unknown", "other",
})
#: The licence of a card that names none, spelled as every card before the ``--license`` option (the Hub id
#: is ``mit``; the model card's front matter writes it lower-cased).
DEFAULT_LICENSE = "MIT"
#: Longest ``license_name`` / ``license_link``.
MAX_LICENSE_TEXT = 500


def canonical_license(value: str) -> str:
    """The card's spelling of the Hub licence identifier ``value`` (any case): lower case, except MIT,
    which cards spell ``"MIT"`` (:data:`DEFAULT_LICENSE`), so that an explicit ``mit`` writes the card the
    default writes.

    Raises:
        CardError: ``value`` is not one of :data:`HUB_LICENSES` (the message lists them).
    """
    lic = value.strip().lower() if isinstance(value, str) else value
    if not isinstance(lic, str) or lic not in HUB_LICENSES:
        raise CardError(f"{_short(repr(value), 60)} is not a Hub licence identifier; use one of: "
                        f"{', '.join(sorted(HUB_LICENSES))} (other: with a licence name).", field="card.license")
    return DEFAULT_LICENSE if lic == "mit" else lic


def check_license(license: str, license_name: str | None = None, license_link: str | None = None) -> None:
    """Refuse a licence the Hub would refuse: an identifier outside :data:`HUB_LICENSES`, ``other``
    without a ``license_name``, or a name or link with any licence but ``other`` (a licence the Hub
    knows by its identifier needs neither).

    Raises:
        CardError: naming the field at fault.
    """
    canonical_license(license)
    for what, text in (("license_name", license_name), ("license_link", license_link)):
        if text is None:
            continue
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_LICENSE_TEXT \
                or any(ord(c) < 32 for c in text):
            raise CardError(f"{what} must be one line of text (1 to {MAX_LICENSE_TEXT} characters), got "
                            f"{_short(repr(text), 60)}.", field=f"card.{what}")
    other = license.strip().lower() == "other"
    if other and license_name is None:
        raise CardError("Licence 'other' needs a licence name (license_name; --license-name), and optionally a "
                        "link to its text (license_link; --license-link).", field="card.license_name")
    if not other and (license_name is not None or license_link is not None):
        raise CardError(f"A licence name or link goes with licence 'other' only; {license.strip().lower()!r} is "
                        "known to the Hub by its identifier.", field="card.license_name")


def merge_license(base: tuple[str, str | None, str | None], license: str | None = None,
                  license_name: str | None = None, license_link: str | None = None) -> tuple[str, str | None, str | None]:
    """``(license, license_name, license_link)`` of ``base`` with the ones given replaced, checked and in the
    card's spelling. A new ``license`` drops the base's name and link (they went with the base's licence)."""
    if license is not None:
        lic, name, link = license, license_name, license_link
    else:
        lic, name, link = base[0], license_name if license_name is not None else base[1], \
            license_link if license_link is not None else base[2]
    check_license(lic, name, link)
    return canonical_license(lic), name, link


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
            raise CardError(f"Unknown VAE kind {_short(repr(self.kind), 40)}; expected one of {VAE_KINDS}.",
                            field="arch.kind")
        if self.kind == "conv7" and self.kernel_size != 7:
            raise CardError("kind 'conv7' needs kernel_size 7.")
        if self.kind == "conv5" and self.kernel_size != 5:
            raise CardError("kind 'conv5' needs kernel_size 5.")
        if self.activation not in ACTIVATIONS:
            raise CardError(f"Unknown activation {_short(repr(self.activation), 40)}; expected one of {ACTIVATIONS}.",
                            field="arch.activation")
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
class TransferInfo:
    """How much the prior helps on its target domain (see :mod:`dwp_hub.training.transfer`): VI of the
    paper's net with this prior on its layer (``other_layers`` elsewhere) against the standard normal
    everywhere, on the same training subsets, paired over data-split seeds."""

    dataset: str
    protocol: str
    n_train: int
    seeds: list[int]
    steps: int
    batch_size: int
    acc_prior: list[float]
    acc_standard_normal: list[float]
    benefit: float
    benefit_std: float
    other_layers: str = "standard-normal"
    split_protocol: str = ""


@dataclass(frozen=True)
class DataLicense:
    """The licence of data a prior was learned from: a dataset the source networks trained on (as
    :mod:`dwp_hub.data` records it) or third-party source checkpoints.

    Attributes:
        dataset: the dataset's name (``mnist``, ``notmnist``, ``cifar10``, ...) or the checkpoints' origin.
        license: its licence as recorded (free text, e.g. ``CC BY-SA 3.0``).
        source_url: where it comes from.
    """

    dataset: str
    license: str
    source_url: str = ""


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
    license: str = DEFAULT_LICENSE
    citation: str = (
        "Atanov, Ashukha, Struminsky, Vetrov, Welling. The Deep Weight Prior. ICLR 2019. "
        "arXiv:1810.06943"
    )
    recipe: dict[str, Any] = field(default_factory=dict)
    schema_version: int = CARD_SCHEMA_VERSION
    weights_sha256_scope: str = "tensors"
    transfer: TransferInfo | None = None
    #: Name and link of the licence when ``license`` is ``other`` (omitted from the card when None).
    license_name: str | None = None
    license_link: str | None = None
    #: Licences of the data the prior was learned from (omitted from the card when empty: cards written
    #: before the field existed re-serialise unchanged).
    data_licenses: list[DataLicense] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.weights_sha256_scope not in WEIGHTS_SCOPES:
            raise CardError(f"Unknown weights_sha256_scope {_short(repr(self.weights_sha256_scope), 40)}; expected one of "
                            f"{WEIGHTS_SCOPES}. Upgrade dwp-hub if the prior is newer.", field="card.weights_sha256_scope")
        try:
            check_license(self.license, self.license_name, self.license_link)
        except CardError as err:
            if err.field != "card.license":
                raise
            raise CardError(f"{err} Upgrade dwp-hub if the prior is newer.", field=err.field) from None
        if not all(isinstance(d, DataLicense) for d in self.data_licenses):
            raise CardError("Card field card.data_licenses should hold DataLicense entries.", field="card.data_licenses")

    @property
    def license_id(self) -> str:
        """The Hub's identifier of the licence (``mit``, ``apache-2.0``, ``other``, ...)."""
        return self.license.lower()

    def expected_weights_sha256(self, tensors_hex: str) -> str:
        """What ``weights_sha256`` must be for tensors whose :func:`~dwp_hub.model._io.tensors_sha256`
        is ``tensors_hex``, under this card's scope."""
        if self.weights_sha256_scope == "tensors":
            return tensors_hex
        return bound_weights_sha256(tensors_hex, self.arch)

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
        if d["weights_sha256_scope"] == "tensors":  # the legacy default: old cards re-serialise unchanged
            del d["weights_sha256_scope"]
        if d["transfer"] is None:  # not measured: omitted, so cards without it stay byte-identical
            del d["transfer"]
        for key in ("license_name", "license_link"):  # licence 'other' only
            if d[key] is None:
                del d[key]
        if not d["data_licenses"]:  # not recorded (cards written before the field existed)
            del d["data_licenses"]
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
        except RecursionError as err:
            raise CardError("Card JSON is nested too deeply.") from err
        except ValueError as err:  # JSONDecodeError, and integers beyond Python's digit limit
            raise CardError(f"Card is not valid JSON: {_short(str(err))}") from err
        return cls.from_dict(data)


def arch_json(arch: ArchConfig) -> str:
    """Canonical JSON of every architecture field (defaults written out): what the weights hash binds."""
    return json.dumps(asdict(arch), sort_keys=True, separators=(",", ":"))


def bound_weights_sha256(tensors_hex: str, arch: ArchConfig) -> str:
    """``weights_sha256`` of scope ``"tensors+arch"``: sha256 over the tensors' hash and the canonical
    architecture, so that no field which changes the computation can be edited without changing it."""
    return hashlib.sha256(f"dwp-hub weights v1|{tensors_hex}|{arch_json(arch)}".encode()).hexdigest()


#: Architectures of priors published before ``weights_sha256`` covered the architecture, pinned by
#: their ``weights_sha256``: an edit of their card's architecture (e.g. ``activation``) is refused
#: even though their hash does not cover it. ``(kind, kernel_size, z_dim, hidden, activation)``.
LEGACY_ARCH_PINS: dict[str, tuple[str, int, int, int, str]] = {
    "5865690368a2d28c9b0bc28affaa21582360478a1794bed09ba48e1262dcccd3": ("mlp", 3, 4, 64, "elu"),  # cifar10-3x3@1.0.0
    "92b880f0f359bee33c0f2869fb8776a69e88e94270ad171418c1bc581c9fd6a0": ("mlp", 3, 4, 32, "elu"),  # cifar10-3x3@1.1.0
    "3858e18cadc63ade285f2d63784a3db8877c36eb0d0c9e48eced5d020f0f58ab": ("mlp", 3, 4, 32, "relu"),  # cifar10-3x3@1.2.0
    "11fb5031b6166e88003c7a8495b2fe81a1b25b1bb2728bd9d13699ca9d3ca19a": ("conv5", 5, 4, 64, "elu"),  # mnist-5x5@1.0.0
    "8f984b11a93cf561f4f44e0305be6bebaeb54efe7b81bb1d5e527568352937cd": ("conv5", 5, 4, 64, "elu"),  # mnist-5x5@1.1.0
    "34ab5b3ee7dc980a3651a21a6002cedbcf39e1e748c2a040bf67f1d10d1b2e89": ("conv7", 7, 2, 32, "elu"),  # mnist-7x7@1.0.0
    "7aed4dd288a92308cf0a7082ee67840ec6b31d6ffd9fcb8f7b0cb95b6857c41e": ("conv7", 7, 2, 32, "elu"),  # mnist-7x7@1.1.0
    "64ae90088b1527c3c161b5994769f364482f868facf550c79b13ad9680d03e2e": ("mlp", 3, 4, 64, "elu"),  # notmnist-3x3@1.0.0
    "aa65342e301849d310e226b242b8d0613e2864602cea6cabc4c68de5f6bf548f": ("conv5", 5, 4, 64, "elu"),  # notmnist-5x5@1.0.0
    "5f016c4c20665559f5baad573d822c4e15f5b8f6072c611574b120cc8928c7f1": ("conv5", 5, 4, 64, "elu"),  # notmnist-5x5@1.1.0
    "374f78f0642a610c47276053180f4c6797db6d3b2f449c1f7fc21dc848bed1c9": ("conv7", 7, 2, 32, "elu"),  # notmnist-7x7@1.0.0
    "72cad80063cd7981b586958a90369127c316dfac4d244bfb7ce800198f988f23": ("conv7", 7, 2, 32, "elu"),  # notmnist-7x7@1.1.0
    "84a25f501016415f1e418eb955c9ddf79870b4d0d6f21935892d98dc5d750c8e": ("conv7", 7, 2, 32, "elu"),  # notmnist-7x7@1.2.0
}


def check_legacy_arch_pin(card: PriorCard) -> None:
    """Refuse a legacy-scope card whose architecture differs from the one pinned for its weights."""
    pinned = LEGACY_ARCH_PINS.get(card.weights_sha256) if card.weights_sha256_scope == "tensors" else None
    if pinned is None:
        return
    a = card.arch
    if (a.kind, a.kernel_size, a.z_dim, a.hidden, a.activation) != pinned:
        raise CardError(
            f"The card of {card.spec} declares architecture {arch_json(a)}, but these weights were published "
            f"with {dict(zip(('kind', 'kernel_size', 'z_dim', 'hidden', 'activation'), pinned))}: the card was "
            "edited. Refusing to load; re-download or re-install this prior.", field="card.arch")


def _short(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters: errors never echo a whole hostile value."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            if d > limit:
                return False
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return True


_NESTED = {"arch": ArchConfig, "source": SourceInfo, "kernels": KernelsInfo, "training": TrainingInfo,
           "metrics": Metrics, "kernel_stats": KernelStats, "transfer": TransferInfo}
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
        raise CardError(f"Card field {where} should be {annotation}, got {type(value).__name__}.", field=where)
    if isinstance(value, int) and not isinstance(value, bool) and not -_MAX_INT <= value < _MAX_INT:
        raise CardError(f"Card field {where} is an integer out of range ({value.bit_length()} bits; at most 63).",
                        field=where)
    if isinstance(value, (dict, list)) and not _depth_ok(value, MAX_CARD_DEPTH):
        raise CardError(f"Card field {where} is nested deeper than {MAX_CARD_DEPTH} levels.", field=where)
    if isinstance(value, (dict, list)):
        _check_leaves(value, where)


def _check_leaves(value: Any, where: str) -> None:
    """Free-form card values (``recipe``, ``checkpoints``) hold JSON scalars of sane size."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and not -_MAX_INT <= v < _MAX_INT:
            raise CardError(f"Card field {where} holds an integer out of range.", field=where)


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise CardError(f"Card field {where} should be an object.", field=where)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        listed = _short(", ".join(sorted(map(str, unknown))))
        raise CardError(f"Unknown card field(s) in {where}: {listed}. If the prior was published by a newer "
                        "dwp-hub, upgrade: pip install -U dwp-hub.", field=where)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CardError(f"Card is missing required field {where}.{name}.", field=f"{where}.{name}")
            continue
        value = data[name]
        if name in _NESTED and cls is PriorCard and not (value is None and f.default is None):
            value = _build(_NESTED[name], value, f"{where}.{name}")
        elif name == "data_licenses" and cls is PriorCard:
            if not isinstance(value, list) or len(value) > MAX_DATA_LICENSES:
                raise CardError(f"Card field {where}.{name} should be a list of at most {MAX_DATA_LICENSES} entries.",
                                field=f"{where}.{name}")
            value = [_build(DataLicense, v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
        else:
            _check_type(value, str(f.type), f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, OverflowError) as err:
        if isinstance(err, CardError):
            raise
        raise CardError(f"Bad card field in {where}: {_short(str(err))}", field=where) from err


def read_safetensors_header(path: str | Path) -> dict[str, Any]:
    """Parse a safetensors file's JSON header without torch (8-byte length + JSON)."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise IntegrityError(f"{path.name} is truncated (no safetensors header).", path=path)
            (n,) = struct.unpack("<Q", head)
            if n > 100_000_000:
                raise IntegrityError(f"{path.name} has an implausible header length {n}.", path=path)
            raw = fh.read(n)
    except FileNotFoundError as err:
        raise IntegrityError(f"{path} is missing.", path=path) from err
    except NotRegularFileError as err:
        raise IntegrityError(f"{path} is {err.strerror}; a prior's weights must be a regular file. Re-download "
                             "or re-publish this prior.", path=path) from err
    except OSError as err:
        if isinstance(err, IntegrityError):
            raise
        raise IntegrityError(f"Cannot read {path}: {err.strerror or err}.", path=path) from err
    if len(raw) != n:
        raise IntegrityError(f"{path.name} is truncated (header).", path=path)
    try:
        header = json.loads(raw)
    except RecursionError as err:
        raise IntegrityError(f"{path.name} has a corrupt header: JSON nested too deeply.", path=path) from err
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, integer digit limit
        raise IntegrityError(f"{path.name} has a corrupt header: {_short(str(err))}", path=path) from err
    if not isinstance(header, dict):
        raise IntegrityError(f"{path.name} has a corrupt header (not a JSON object).", path=path)
    return header


def card_from_weights_file(path: str | Path) -> PriorCard:
    """Read the card out of a ``model.safetensors`` header (no torch import).

    Raises :class:`IntegrityError` (unreadable or corrupt file) or :class:`CardError` (no card, or a
    malformed one), each naming the file.
    """
    path = Path(path)
    meta = read_safetensors_header(path).get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise IntegrityError(f"{path.name} has a corrupt header: __metadata__ must map strings to strings.",
                             path=path)
    if CARD_METADATA_KEY not in meta:
        raise CardError(f"{path.name} carries no dwp-hub card in its metadata header.", path=path)
    if meta.get(SCHEMA_METADATA_KEY) != str(CARD_SCHEMA_VERSION):
        raise CardError(
            f"{path.name} was written with card schema {_short(repr(meta.get(SCHEMA_METADATA_KEY)), 40)}; "
            f"this dwp-hub reads {CARD_SCHEMA_VERSION}. Upgrade dwp-hub if the prior is newer.", path=path
        )
    try:
        return PriorCard.from_json(meta[CARD_METADATA_KEY])
    except CardError as err:
        raise CardError(f"{path.name}: {err}", path=path, field=err.field) from err
