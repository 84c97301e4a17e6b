"""CLI options and arguments defined once and reused by every command group.

One style of optional types throughout: ``X | None``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

SpecArg = Annotated[str, typer.Argument(help="Prior: NAME, NAME@X.Y.Z, or hf-hub:ORG/REPO[@REV].", show_default=False)]
OptSpecArg = Annotated[str | None, typer.Argument(help="Prior (default: every local prior).", show_default=False)]
#: Seeds are 0 .. 2**63 - 1 (what torch.Generator.manual_seed takes); others are usage errors (exit 2).
MAX_SEED = 2**63 - 1
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed (same seed, same output).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output path.")]
SampleOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output file; its suffix picks the format: .png, "
                                            ".jpg, .pdf, .svg (a picture of at most 1,024 kernels), .safetensors or "
                                            ".npy (every kernel).")]
ToOpt = Annotated[str, typer.Option("--to", help="Registry directory, or hf-hub:ORG/REPO.")]
#: ``--to`` of ``pull``: a local registry directory only, optional.
ToDirOpt = Annotated[Path | None, typer.Option("--to", help="Registry directory (default: the user registry).")]
#: ``--to`` of ``push``: a Hub repository only.
ToHubOpt = Annotated[str, typer.Option("--to", help="hf-hub:ORG/REPO (one repository per prior name).")]
RegistryOpt = Annotated[Path | None, typer.Option(
    "--registry", help="Local registry directory (default: the one holding the prior, searched as 'dwp-hub list' does).")]
WorkDirOpt = Annotated[Path | None, typer.Option(
    "--work-dir", help="Where intermediate files go (default: $DWP_HUB_HOME/work).")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel worker processes.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every version, not only the newest.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
NameOpt = Annotated[str, typer.Option("--name", help="Prior name, e.g. notmnist-7x7.")]
VersionOpt = Annotated[str, typer.Option("--version", help="Semantic version X.Y.Z.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs (default: the recipe's).")]


def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}.")
    return value


LrOpt = Annotated[float, typer.Option("--lr", callback=_positive, help="Adam learning rate (> 0).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Mini-batch size.")]
L2Opt = Annotated[float, typer.Option("--l2", min=0.0, help="L2 weight decay.")]
#: Accepted before the subcommand (``dwp-hub --debug info X``) and after it (``dwp-hub info X --debug``).
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors (or set DWP_HUB_DEBUG=1).")]


class VIPrior(str, Enum):
    """Priors of ``dwp-hub vi`` (kept equal to ``dwp_hub.inference.vi.PAPER_PRIORS`` by a test)."""

    dwp = "dwp"
    log_uniform = "log-uniform"
    standard_normal = "standard-normal"
    deterministic = "deterministic"
    sparse_log_uniform = "sparse-log-uniform"


class VIDataset(str, Enum):
    """Target data of ``dwp-hub vi`` (the 10k protocol of either file)."""

    mnist = "mnist"
    notmnist = "notmnist"


class VIBound(str, Enum):
    """The DWP bound of ``dwp-hub vi``."""

    fast = "fast"
    full = "full"


class Dataset(str, Enum):
    """Source datasets of ``dwp-hub train-source`` (kept equal to ``dwp_hub.data``'s datasets by a test)."""

    notmnist = "notmnist"
    mnist = "mnist"
    mnist_train = "mnist-train"
    cifar10 = "cifar10"
    cifar100 = "cifar100"


class Arch(str, Enum):
    """Source network architectures of ``dwp-hub train-source``."""

    fconv = "fconv"
    fconv3 = "fconv3"
    cifar = "cifar"


class Augment(str, Enum):
    """Source-training augmentation (kept equal to ``dwp_hub.training.source.AUGMENTATIONS`` by a test)."""

    none = "none"
    affine = "affine"
    affine_elastic = "affine+elastic"


class Activation(str, Enum):
    """Hidden activations of ``dwp-hub fit`` (kept equal to ``dwp_hub.card.ACTIVATIONS`` by a test)."""

    elu = "elu"
    relu = "relu"


class VAEKind(str, Enum):
    """Kernel VAE architectures of ``dwp-hub fit``."""

    conv7 = "conv7"
    conv5 = "conv5"
    mlp = "mlp"
