"""Hub commands: ``pull`` and ``push`` mirror priors between the Hugging Face Hub and a local
registry directory (e.g. an internal registry on a shared disk)."""

from __future__ import annotations

from typing import Annotated

import typer

from dwp_hub.cli._console import console
from dwp_hub.cli._options import AllOpt, ToDirOpt, ToOpt


def pull_cmd(
    spec: Annotated[str, typer.Argument(help="hf-hub:ORG/REPO[@REV] (REV: tag vX.Y.Z, branch or commit sha).",
                                        show_default=False)],
    to: ToDirOpt = None,
    all_versions: AllOpt = False,
) -> None:
    """Copy a prior from the Hugging Face Hub into a local registry, keeping its name and version.

    --to names the registry directory (default: the user registry); --all copies every v<version> tag.
    """
    if to is not None and str(to).strip().startswith("hf-hub:"):
        raise typer.BadParameter(f"{str(to)[:100]!r} is a Hub repository: pull copies from the Hub into a registry "
                                 "directory (--to DIR). To copy a local prior to the Hub run 'dwp-hub push'.",
                                 param_hint="--to")
    from dwp_hub.registry._hf import pull_prior

    for r in pull_prior(spec, to, all_versions=all_versions):
        verb = "Pulled" if r.added else "Already present:"
        console.print(f"{verb} {r.spec} from {r.source} -> {r.folder}", highlight=False)


def push_cmd(
    spec: Annotated[str, typer.Argument(help="Local prior: NAME (newest) or NAME@X.Y.Z.", show_default=False)],
    to: ToOpt,
    all_versions: AllOpt = False,
) -> None:
    """Publish a local prior to the Hub: one commit per version, tagged v<version>.

    --to names the Hub repository, hf-hub:ORG/REPO (one repository per prior name); --all pushes every
    local version not yet on the Hub.
    """
    if not to.strip().startswith("hf-hub:"):
        raise typer.BadParameter(f"{to[:100]!r} is not a Hub repository: push takes --to hf-hub:ORG/REPO. To copy a "
                                 "prior into a local registry run 'dwp-hub publish REGISTRY/NAME/X.Y.Z --name NAME "
                                 "--version X.Y.Z --to DIR'.", param_hint="--to")
    from dwp_hub.registry._hf import push_prior

    for local, hub in push_prior(spec, to, all_versions=all_versions):
        if hub is None:
            console.print(f"{local} already on {to}; skipped.", highlight=False)
        else:
            console.print(f"Pushed {local} -> {hub}", highlight=False)
