"""CLI options defined once and reused by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

SpecArg = Annotated[str, typer.Argument(help="Prior: NAME, NAME@X.Y.Z, or hf-hub:ORG/REPO[@REV].", show_default=False)]
OptSpecArg = Annotated[Optional[str], typer.Argument(help="Prior (default: every local prior).", show_default=False)]
#: Seeds are 0 .. 2**63 - 1 (what torch.Generator.manual_seed takes); others are usage errors (exit 2).
MAX_SEED = 2**63 - 1
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Random seed (same seed, same output).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output path.")]
ToOpt = Annotated[str, typer.Option("--to", help="Registry directory, or hf-hub:ORG/REPO.")]
WorkDirOpt = Annotated[Optional[Path], typer.Option("--work-dir", help="Where intermediate files go (default: $DWP_HUB_HOME/work).")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-j", min=1, help="Parallel worker processes.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NameOpt = Annotated[str, typer.Option("--name", help="Prior name, e.g. notmnist-7x7.")]
VersionOpt = Annotated[str, typer.Option("--version", help="Semantic version X.Y.Z.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", min=1, help="Training epochs (default: the recipe's).")]
