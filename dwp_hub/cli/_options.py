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
#: ``--out`` of every command that writes something; its default (a file or a folder) is the command's own.
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Where to write (what is written: see the command's help).")]

#: ``--to``: one option, whatever the destination; ``push`` takes only a Hub repository and ``pull`` only
#: a directory (each says so when given the other kind).
_TO = typer.Option("--to", help="Destination: a registry directory or hf-hub:ORG/REPO (push: the Hub only; pull: a "
                                "directory, default the user registry).")
ToOpt = Annotated[str, _TO]
ToDirOpt = Annotated[Path | None, _TO]
RegistryOpt = Annotated[Path | None, typer.Option(
    "--registry", help="Local registry directory (default: the one holding the prior, searched as 'dwp-hub list' does).")]
WorkDirOpt = Annotated[Path | None, typer.Option(
    "--work-dir", help="Where intermediate files go (default: $DWP_HUB_HOME/work).")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel worker processes.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Every version, not only the newest.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
_NAME = typer.Option("--name", help="Prior name, e.g. notmnist-7x7 (a fit's draft: 'unpublished' unless given).")
NameOpt = Annotated[str, _NAME]
OptNameOpt = Annotated[str | None, _NAME]
VersionOpt = Annotated[str, typer.Option("--version", help="Semantic version X.Y.Z.")]
DescriptionOpt = Annotated[str | None, typer.Option(
    "--description", help="One-line description for the card (default: the card's own; none for a new fit).")]


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise typer.BadParameter(f"must be > 0, got {value}.")
    return value


# Training hyper-parameters: None means the value in the command's recipe (SourceRecipe for
# train-source, FitRecipe for fit), so a command's defaults cannot drift from the library's; each
# command's help lists them.
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="Training epochs (default: the recipe's).")]
LrOpt = Annotated[float | None, typer.Option("--lr", callback=_positive,
                                             help="Adam learning rate, > 0, decayed linearly to 0 (default: the "
                                                  "recipe's).")]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", min=1, help="Mini-batch size (default: the recipe's).")]
L2Opt = Annotated[float | None, typer.Option("--l2", min=0.0, help="Weight of the L2 penalty on the conv weights "
                                                                    "(default: the recipe's).")]
WidthsOpt = Annotated[str | None, typer.Option("--widths", help="Comma-separated conv widths, e.g. 64,32 (default: "
                                                                "the network's).")]


def _device(value: str | None) -> str | None:
    """``--device``: a device this machine has (torch is imported only when the option is given)."""
    if value is None:
        return None
    from dwp_hub._device import resolve_device
    from dwp_hub.errors import ConfigError

    try:
        resolve_device(value)
    except ConfigError as err:  # a usage error (exit 2) that names the device
        raise typer.BadParameter(str(err)) from None
    return value


#: ``--device`` of the training commands: where they compute. A device this machine lacks is a usage error.
DeviceOpt = Annotated[str | None, typer.Option(
    "--device", callback=_device, help="Where to train: cpu, cuda, cuda:N or mps (default: cpu). Results differ "
                                       "between devices only by float rounding; the device is not part of any "
                                       "recipe or cache key.")]
def _license(value: str | None) -> str | None:
    """``--license``: a Hub licence identifier, in the card's spelling (unknown: a usage error listing them)."""
    if value is None:
        return None
    from dwp_hub.card import canonical_license
    from dwp_hub.errors import CardError

    try:
        return canonical_license(value)
    except CardError as err:
        raise typer.BadParameter(str(err)) from None


#: The licence options of the commands that write a prior's card (fit, build, publish). None: the recipe's
#: (build), the card's (publish), else mit.
LicenseOpt = Annotated[str | None, typer.Option(
    "--license", callback=_license, help="Licence of the prior's weights, a Hub licence id: mit, apache-2.0, "
                                         "cc-by-4.0, bsd-3-clause, ..., or other (with --license-name). Default: "
                                         "the recipe's (build), the card's (publish), else mit.")]
LicenseNameOpt = Annotated[str | None, typer.Option(
    "--license-name", help="Name of the licence when it is 'other' (required then).")]
LicenseLinkOpt = Annotated[str | None, typer.Option(
    "--license-link", help="Link to the licence's text when it is 'other'.")]
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


class VIPrecision(str, Enum):
    """Arithmetic of ``dwp-hub vi``'s forward pass (kept equal to ``dwp_hub.inference.Precision`` by a test)."""

    fp32 = "fp32"
    bf16 = "bf16"


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
    blur = "blur"
    affine_blur = "affine+blur"


class Activation(str, Enum):
    """Hidden activations of ``dwp-hub fit`` (kept equal to ``dwp_hub.card.ACTIVATIONS`` by a test)."""

    elu = "elu"
    relu = "relu"


class VAEKind(str, Enum):
    """Kernel VAE architectures of ``dwp-hub fit``."""

    conv7 = "conv7"
    conv5 = "conv5"
    mlp = "mlp"
