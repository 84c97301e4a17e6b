"""Registry commands: ``list``, ``info``, ``verify``, ``sample``, ``remove``.

Heavy imports happen inside the commands, so ``list`` and ``info`` never import torch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dwp_hub.cli._console import console, err_console
from dwp_hub.cli._options import AllOpt, JsonOpt, OptSpecArg, OutOpt, RegistryOpt, SeedOpt, SpecArg, YesOpt
from dwp_hub.errors import DwpHubError

#: Kernels decoded per call when sampling (bounds the VAE's activation memory for any --n).
SAMPLE_CHUNK = 4096
#: Most kernels drawn into one picture (a grid of 100,000 kernels is unreadable and costly).
MAX_PICTURE_KERNELS = 1024
#: ``--out`` suffix -> format written by ``sample``: pictures (matplotlib) or arrays of every kernel.
PICTURE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}
ARRAY_FORMATS = {".safetensors": "safetensors", ".npy": "npy"}


def list_cmd(
    repo: Annotated[str | None, typer.Argument(help="hf-hub:ORG/REPO to list its published versions.")] = None,
    all_versions: AllOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List published priors (local registries, or the versions of a Hub repository)."""
    if repo is not None:
        if not repo.strip().startswith("hf-hub:"):
            raise typer.BadParameter(f"{repo[:100]!r} is not a Hub repository (hf-hub:ORG/REPO). For local priors run "
                                     "'dwp-hub list --all' (every version) or 'dwp-hub info NAME'.", param_hint="REPO")
        from dwp_hub.registry._hf import list_hub_versions

        rows = list_hub_versions(repo)
        if as_json:
            console.print_json(json.dumps(rows))
            return
        table = Table("version", "tag", "commit")
        for r in rows:
            table.add_row(r["version"], r["tag"], r["commit"][:12])
        console.print(table)
        return
    from dwp_hub._listing import list_priors

    infos = list_priors(all_versions=all_versions)
    if as_json:
        console.print_json(json.dumps([{**i.__dict__, "spec": i.spec} for i in infos]))
        return
    if not infos:
        console.print("No priors found. Publish one with 'dwp-hub build RECIPE.yaml --to DIR'.")
        return
    table = Table("name", "version", "kernel", "source", "held-out ELBO", "registry")
    for i in infos:
        elbo = f"{i.heldout_elbo:.2f}" if isinstance(i.heldout_elbo, (int, float)) else "-"
        table.add_row(i.name, i.version + ("" if i.latest else " (old)"), f"{i.kernel_size}x{i.kernel_size}",
                      i.source, elbo, i.registry)
    console.print(table)


def _card_for(spec: str) -> tuple[Any, str]:
    from dwp_hub.registry import HubRef, parse_ref

    ref = parse_ref(spec)
    if isinstance(ref, HubRef):
        from dwp_hub.card import card_from_weights_file
        from dwp_hub.registry._hf import download_prior

        folder, commit = download_prior(ref)
        return card_from_weights_file(folder / "model.safetensors"), f"{ref} (commit {commit})"
    from dwp_hub._listing import prior_card

    resolved, card = prior_card(spec)
    return card, f"{resolved.registry.label}: {resolved.folder}"


def recipe_yaml(card: Any) -> str:
    """The recipe embedded in ``card`` as YAML that ``dwp-hub build`` reads back (what ``recipe.yaml`` holds)."""
    from dwp_hub.registry._local import recipe_yaml as render

    text = render(card)
    if text is None:
        from dwp_hub.errors import CardError

        raise CardError(f"{card.spec} carries no recipe (it was published step by step by a dwp-hub older than the "
                        "recipe record); there is nothing to export.", field="card.recipe")
    return text


def info_cmd(
    spec: SpecArg,
    as_json: JsonOpt = False,
    recipe: Annotated[bool, typer.Option("--recipe", help="Print only the recipe in the card, as YAML for "
                                                          "'dwp-hub build'.")] = False,
) -> None:
    """Show a prior's card: provenance, metrics, recipe."""
    if as_json and recipe:
        raise typer.BadParameter("Give --json or --recipe, not both.", param_hint="--recipe")
    card, where = _card_for(spec)
    if recipe:
        sys.stdout.write(recipe_yaml(card))  # plain text, no rich wrapping: meant for '> recipe.yaml'
        return
    if as_json:
        console.print_json(card.to_json())
        return
    m, s, k, a = card.metrics, card.source, card.kernels, card.arch
    table = Table(show_header=False, title=f"{card.spec}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    ref = f" (authors' release: {m.reference_elbo})" if m.reference_elbo is not None else ""
    for key, value in [
        ("description", card.description),
        ("location", where),
        ("kernels", f"{a.kernel_size}x{a.kernel_size}, VAE {a.kind} z_dim={a.z_dim} hidden={a.hidden} activation={a.activation}"),
        ("source", f"{s.domain}; {s.n_networks} x {s.network}, layer {s.layer}; held-out nets {s.held_out_networks}"),
        ("kernels kept", f"{k.kept} of {k.total} ({k.prune_rule}); train {k.n_train} / held-out {k.n_held_out}"),
        ("held-out ELBO", f"{m.heldout_elbo:.2f} nats/kernel{ref}"),
        ("held-out IW log-lik", f"{m.heldout_iw_log_likelihood:.2f} nats/kernel (K={m.iw_k})"),
        ("training", (f"{card.training.epochs} epochs, lr {card.training.lr:g}, batch {card.training.batch_size}, "
                      f"seed {card.training.seed}, {card.training.seconds:.0f} s")),
        ("weights sha256", card.weights_sha256),
        ("integrity", f"unverified: read without hashing; run 'dwp-hub verify {spec}' to check files and metrics"),
        ("created", f"{card.created} (dwp-hub {card.dwp_hub_version})"),
        ("license", card.license),
        ("recipe", f"'dwp-hub info {spec} --recipe > recipe.yaml' exports it" if card.recipe else "none in the card"),
    ]:
        table.add_row(key, str(value))
    console.print(table)


def _out_format(out: Path) -> str:
    """The format ``--out``'s suffix names; any other suffix is a usage error (exit 2)."""
    suffix = out.suffix.lower()
    fmt = PICTURE_FORMATS.get(suffix) or ARRAY_FORMATS.get(suffix)
    if fmt is None:
        known = ", ".join([*PICTURE_FORMATS, *ARRAY_FORMATS])
        raise typer.BadParameter(f"{str(out)[:200]!r}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
                                 f"end the name in one of {known}.", param_hint="'--out' / '-o'")
    return fmt


def sample_cmd(
    spec: SpecArg,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=100_000, help="Number of kernels.")] = 64,
    out: OutOpt = Path("samples.png"),
    seed: SeedOpt = 0,
    noise: Annotated[bool, typer.Option("--noise/--mean", help="Add decoder noise, or show decoder means.")] = False,
) -> None:
    """Sample kernels from a prior and save them as a picture, .safetensors or .npy.

    The suffix of --out picks the format: .png, .jpg, .pdf or .svg (a picture of at most 1,024
    kernels), .safetensors or .npy (every kernel).

    Kernels are decoded in chunks of SAMPLE_CHUNK, so memory does not grow with the VAE's
    activations for large --n; a picture shows at most MAX_PICTURE_KERNELS of them.
    """
    from dwp_hub._fs import check_output_target

    out = check_output_target(out)  # before any work: never replace a directory, FIFO or device
    fmt = _out_format(out)
    import torch

    from dwp_hub._api import load

    prior = load(spec)
    gen = torch.Generator().manual_seed(seed)
    picture = fmt in PICTURE_FORMATS.values()
    want = min(n, MAX_PICTURE_KERNELS) if picture else n
    chunks = []
    for start in range(0, want, SAMPLE_CHUNK):  # same draws as one call when want <= SAMPLE_CHUNK
        chunks.append(prior.sample(min(SAMPLE_CHUNK, want - start), generator=gen, noise=noise).contiguous())
    kernels = torch.cat(chunks)
    if not picture:
        from dwp_hub._fs import atomic_path

        with atomic_path(out) as tmp:
            if fmt == "safetensors":
                from safetensors.torch import save_file

                save_file({"kernels": kernels}, str(tmp), metadata={"prior": prior.card.spec, "seed": str(seed)})
            else:
                import numpy as np

                with open(tmp, "wb") as fh:  # a file object: np.save would append .npy to a path
                    np.save(fh, kernels.numpy(), allow_pickle=False)
        console.print(f"Wrote {n} kernels from {prior.card.spec} to {out}")
        return
    from dwp_hub._plot import kernel_grid

    shown = f"{want} of {n} samples" if want < n else f"{n} samples"
    kernel_grid(kernels, out, f"{prior.card.spec}: {shown} (seed {seed}, {'noisy' if noise else 'decoder means'})",
                format=fmt)
    note = f" (the picture shows the first {want}; write .safetensors or .npy for all {n})" if want < n else ""
    console.print(f"Wrote {want} kernels from {prior.card.spec} to {out}{note}")


def verify_cmd(spec: OptSpecArg = None) -> None:
    """Check the sha256 of every file of one prior (or of every local prior, reporting every failure,
    malformed index entry and orphaned version folder)."""
    from dwp_hub.registry import registries, resolve

    if spec is not None and spec.strip().startswith("hf-hub:"):
        from dwp_hub.registry._hf import verify_hub_prior

        _, commit, card = verify_hub_prior(spec.strip())
        console.print(f"[green]OK[/green]   {card.spec} ({spec.strip()}, commit {commit[:12]})")
        return
    failures = 0

    def fail(what: str, where: str, err: object) -> None:
        nonlocal failures
        failures += 1
        err_console.print(f"[red]FAIL[/red] {what} ({where}): {err}", markup=True, highlight=False, soft_wrap=True)

    targets = []
    if spec is None:
        for reg in registries():
            try:
                good = reg.index()
                problems, orphans = reg.index_problems(), reg.orphans()
            except DwpHubError as err:
                fail("index", reg.label, err)
                continue
            for name in sorted(good):
                targets += [(reg, name, v) for v in reg.versions(name)]
            for problem in problems:
                fail(f"index entry {problem.name[:80]}" + (f"@{problem.version[:40]}" if problem.version else ""),
                     reg.label, problem)
            for orphan in orphans:
                fail(f"{orphan.name}@{orphan.version}", reg.label, orphan)
    else:
        r = resolve(spec)
        targets = [(r.registry, r.name, r.version)]
    for reg, name, version in targets:
        try:
            reg.verify(name, version)
            _weights_ok(reg.folder(name, version))
            console.print(f"[green]OK[/green]   {name}@{version} ({reg.label})")
        except DwpHubError as err:  # every prior is checked; each failure is reported
            fail(f"{name}@{version}", reg.label, err)
    if not targets and not failures:
        console.print("No priors to verify.")
    if failures:
        err_console.print(f"{failures} problem(s) found.")
        raise typer.Exit(1)


def _weights_ok(folder: Path) -> Any:
    from dwp_hub.errors import CardError
    from dwp_hub.model._io import build_vae, read_weights

    card, tensors = read_weights(folder / "model.safetensors")
    try:
        build_vae(card, tensors)  # the tensors fit the card's architecture
    except CardError as err:
        raise CardError(f"{folder / 'model.safetensors'}: {err}", path=folder / "model.safetensors",
                        field=err.field) from err
    return card, tensors


def remove_cmd(
    spec: Annotated[str, typer.Argument(help="NAME@X.Y.Z: the version to remove (a version must be named).",
                                        show_default=False)],
    registry: RegistryOpt = None,
    yes: YesOpt = False,
) -> None:
    """Remove one version of a prior from a local registry (its folder and its index entry, atomically).

    The way out for a damaged or mistaken local version: versions are immutable, so remove it and
    publish (or pull) it again. The registry shipped with dwp-hub cannot be changed.
    """
    from dwp_hub import constants
    from dwp_hub.registry import LocalRegistry, PriorRef, parse_ref, registries

    ref = parse_ref(spec)
    if not isinstance(ref, PriorRef) or ref.version is None:
        raise typer.BadParameter(f"{spec[:200]!r}: name the version to remove, as NAME@X.Y.Z (see 'dwp-hub list "
                                 "--all'); Hub repositories are managed on the Hub.", param_hint="SPEC")
    if registry is not None:
        reg = LocalRegistry(registry, str(registry))
    else:
        holders = [r for r in registries() if any(v == ref.version for v in r.versions(ref.name))
                   or r.folder(ref.name, ref.version).is_dir()]
        writable = [r for r in holders if r.root.resolve() != constants.embedded_registry().resolve()]
        if not writable and holders:
            reg = holders[0]  # the embedded registry: remove() refuses it with the reason
        elif not writable:
            from dwp_hub.errors import PriorNotFoundError

            raise PriorNotFoundError(f"No local registry holds {ref.name}@{ref.version}. Run 'dwp-hub list --all' "
                                     "to see the published versions.", name=ref.name)
        elif len(writable) > 1:
            listed = ", ".join(str(r.root) for r in writable)
            raise typer.BadParameter(f"{ref.name}@{ref.version} is in several registries ({listed}); choose one "
                                     "with --registry DIR.", param_hint="--registry")
        else:
            reg = writable[0]
    if not yes:
        if not sys.stdin.isatty():
            raise typer.BadParameter(f"Removing {ref.name}@{ref.version} from {reg.root} cannot be undone; add --yes "
                                     "to confirm.", param_hint="--yes")
        typer.confirm(f"Remove {ref.name}@{ref.version} from {reg.root}? This cannot be undone.", abort=True)
    folder = reg.remove(ref.name, ref.version)
    console.print(f"Removed {ref.name}@{ref.version} from {reg.label or reg.root} ({folder})", highlight=False)
