"""Command definitions."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dwp_hub import constants
from dwp_hub.cli._options import (
    EpochsOpt, JsonOpt, NameOpt, OptSpecArg, OutOpt, QuietOpt, SeedOpt, SpecArg, ToOpt, VersionOpt, WorkDirOpt,
    WorkersOpt,
)
from dwp_hub.errors import DwpHubError, OutputPathError

#: Click's own exceptions (typer may vendor click): click reports them (usage errors exit 2).
_CLICK_ERRORS = tuple({click.exceptions.ClickException,
                       *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")})
#: Errors in how the command was called (not in the data): exit status 2, like click's usage errors.
USAGE_ERRORS = (OutputPathError,)

#: Kernels decoded per call when sampling (bounds the VAE's activation memory for any --n).
SAMPLE_CHUNK = 4096
#: Most kernels drawn into one PNG grid (a grid of 100,000 axes would need tens of GB).
MAX_PICTURE_KERNELS = 1024

app = typer.Typer(name="dwp-hub", help="A hub of pretrained deep weight priors.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def _handle_errors(fn: F) -> F:
    """Print a clean one-line error and exit 1; show the traceback only with --debug."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit, *_CLICK_ERRORS):
            raise  # click prints usage errors itself (exit 2)
        except KeyboardInterrupt:
            err_console.print("[red]Interrupted.[/red]")
            raise typer.Exit(130) from None
        except Exception as err:  # noqa: BLE001 - the CLI boundary
            if _state["debug"] or constants.debug():
                raise
            kind = "Error" if isinstance(err, DwpHubError) else f"Unexpected error ({type(err).__name__})"
            err_console.print(f"[bold red]{kind}:[/bold red] {escape(str(err))}", markup=True, highlight=False,
                              soft_wrap=True)
            if not isinstance(err, DwpHubError):
                err_console.print("Run again with --debug for the traceback.")
            raise typer.Exit(2 if isinstance(err, USAGE_ERRORS) else 1) from None

    return wrapper  # type: ignore[return-value]


def _command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    def deco(fn: F) -> F:
        return app.command(*args, **kwargs)(_handle_errors(fn))

    return deco


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False) -> None:
    _state["debug"] = debug


@_command("list")
def list_cmd(
    repo: Annotated[Optional[str], typer.Argument(help="hf-hub:ORG/REPO to list its published versions.")] = None,
    all_versions: Annotated[bool, typer.Option("--all", help="Show every version, not only the newest.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List published priors (local registries, or the versions of a Hub repository)."""
    if repo is not None:
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


@_command("info")
def info_cmd(spec: SpecArg, as_json: JsonOpt = False) -> None:
    """Show a prior's card: provenance, metrics, recipe."""
    card, where = _card_for(spec)
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
        ("training", f"{card.training.epochs} epochs, lr {card.training.lr:g}, batch {card.training.batch_size}, "
                     f"seed {card.training.seed}, {card.training.seconds:.0f} s"),
        ("weights sha256", card.weights_sha256),
        ("integrity", f"unverified: read without hashing; run 'dwp-hub verify {spec}' to check files and metrics"),
        ("created", f"{card.created} (dwp-hub {card.dwp_hub_version})"),
        ("license", card.license),
    ]:
        table.add_row(key, str(value))
    console.print(table)


@_command("sample")
def sample_cmd(
    spec: SpecArg,
    n: Annotated[int, typer.Option("--n", "-n", min=1, max=100_000, help="Number of kernels.")] = 64,
    out: OutOpt = Path("samples.png"),
    seed: SeedOpt = 0,
    noise: Annotated[bool, typer.Option("--noise/--mean", help="Add decoder noise, or show decoder means.")] = False,
) -> None:
    """Sample kernels from a prior and save them as a PNG grid (or .safetensors).

    Kernels are decoded in chunks of SAMPLE_CHUNK, so memory does not grow with the VAE's
    activations for large --n; a PNG shows at most MAX_PICTURE_KERNELS of them.
    """
    import torch

    from dwp_hub._api import load
    from dwp_hub._fs import check_output_target

    out = check_output_target(out)  # before any work: never replace a directory, FIFO or device
    prior = load(spec)
    gen = torch.Generator().manual_seed(seed)
    picture = out.suffix != ".safetensors"
    want = min(n, MAX_PICTURE_KERNELS) if picture else n
    chunks = []
    for start in range(0, want, SAMPLE_CHUNK):  # same draws as one call when want <= SAMPLE_CHUNK
        chunks.append(prior.sample(min(SAMPLE_CHUNK, want - start), generator=gen, noise=noise).contiguous())
    kernels = torch.cat(chunks)
    if not picture:
        from safetensors.torch import save_file

        from dwp_hub._fs import atomic_path

        with atomic_path(out) as tmp:
            save_file({"kernels": kernels}, str(tmp), metadata={"prior": prior.card.spec, "seed": str(seed)})
        console.print(f"Wrote {n} kernels from {prior.card.spec} to {out}")
        return
    from dwp_hub._plot import kernel_grid

    shown = f"{want} of {n} samples" if want < n else f"{n} samples"
    kernel_grid(kernels, out, f"{prior.card.spec}: {shown} (seed {seed})")
    note = f" (the picture shows the first {want}; write .safetensors for all {n})" if want < n else ""
    console.print(f"Wrote {want} kernels from {prior.card.spec} to {out}{note}")


@_command("verify")
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
        raise CardError(f"{folder / 'model.safetensors'}: {err}") from err
    return card, tensors


@_command("train-source")
def train_source_cmd(
    dataset: Annotated[str, typer.Option("--dataset", help="notmnist, mnist, cifar10 or cifar100.")] = "notmnist",
    arch: Annotated[str, typer.Option("--arch", help="fconv (7x7, 5x5), fconv3 (3x3) or cifar (4 widths).")] = "fconv",
    widths: Annotated[str, typer.Option("--widths", help="Comma-separated widths, e.g. 256,512.")] = "256,512",
    n_nets: Annotated[int, typer.Option("--n-nets", min=1, help="Number of source networks.")] = 10,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    seed: SeedOpt = 0,
    out: OutOpt = Path("sources"),
    workers: WorkersOpt = 1,
    quiet: QuietOpt = False,
) -> None:
    """Train source networks (one seed each) and save safetensors checkpoints."""
    from dwp_hub.model.nets import NetConfig
    from dwp_hub.training.source import SourceRecipe, summarize, train_sources

    net = NetConfig(arch, tuple(int(w) for w in widths.split(",")), 3 if arch == "cifar" else 1,
                    100 if dataset == "cifar100" else 10)
    recipe = SourceRecipe(dataset, net, n_nets, seed, epochs)
    paths = train_sources(recipe, out, workers=workers, progress=not quiet)
    s = summarize(paths)
    console.print(f"{s['n']} checkpoints in {out}; validation accuracy mean {s['val_acc_mean']:.4f}, min {s['val_acc_min']:.4f}")


@_command("harvest")
def harvest_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoints (.safetensors or torch state dicts).")],
    layer: Annotated[str, typer.Option("--layer", help="fnmatch pattern on weight names, e.g. '0.weight' or 'layer*.conv*.weight'.")],
    kernel_size: Annotated[int, typer.Option("--kernel-size", "-k")],
    min_norm: Annotated[Optional[float], typer.Option("--min-norm", help="Keep kernels with L2 norm >= this.")] = None,
    top_fraction: Annotated[Optional[float], typer.Option("--top-fraction", help="Keep this fraction of largest-norm kernels.")] = None,
    held_out: Annotated[str, typer.Option("--held-out", help="Comma-separated indices of held-out networks.")] = "",
    max_per_net: Annotated[Optional[int], typer.Option("--max-per-net", help="Subsample to at most this many kernels per net.")] = None,
    out: OutOpt = Path("kernels.safetensors"),
) -> None:
    """Build a kernel dataset from checkpoints, pruned and split by source network."""
    from dwp_hub.training.harvest import HarvestSpec, PruneRule, harvest

    if min_norm is not None and top_fraction is not None:
        raise typer.BadParameter("Give --min-norm or --top-fraction, not both.")
    rule = (PruneRule("min_norm", min_norm) if min_norm is not None
            else PruneRule("top_fraction", top_fraction) if top_fraction is not None else PruneRule("none"))
    try:
        held = tuple(int(i) for i in held_out.split(",") if i.strip())
    except ValueError:
        raise typer.BadParameter(f"--held-out takes comma-separated network indices, e.g. 0,3; got {held_out[:80]!r}.",
                                 param_hint="--held-out") from None
    from dwp_hub._fs import check_output_target

    out = check_output_target(out)
    spec = HarvestSpec(layer, kernel_size, rule, held, max_per_net)
    data = harvest([str(c) for c in checkpoints], spec)
    data.save(out)
    m = data.meta
    console.print(f"Kept {m['kernels_kept']} of {m['kernels_total']} kernels ({rule.describe()}); "
                  f"train {m['n_train']} / held-out {m['n_held_out']} -> {out}")


@_command("fit")
def fit_cmd(
    kernels: Annotated[Path, typer.Argument(help="Kernel dataset written by 'dwp-hub harvest'.")],
    out: OutOpt = Path("fitted"),
    kind: Annotated[Optional[str], typer.Option("--kind", help="conv7, conv5 or mlp (default by kernel size).")] = None,
    z_dim: Annotated[Optional[int], typer.Option("--z-dim")] = None,
    hidden: Annotated[Optional[int], typer.Option("--hidden")] = None,
    activation: Annotated[Optional[str], typer.Option(
        "--activation", help="Hidden activation: elu (the paper's) or relu. Default: elu for conv7/conv5, "
                          "relu for mlp (as cifar10-3x3@1.2.0).")] = None,
    epochs: EpochsOpt = None,
    lr: Annotated[float, typer.Option("--lr")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    seed: SeedOpt = 0,
    iw_k: Annotated[int, typer.Option("--iw-k", min=1, help="Importance samples for the held-out log-likelihood.")] = 1000,
    name: Annotated[str, typer.Option("--name", help="Name written into the draft card.")] = "unpublished",
    description: Annotated[str, typer.Option("--description")] = "",
    quiet: QuietOpt = False,
) -> None:
    """Fit a kernel VAE (paper recipe by default), evaluate it, write a publishable folder."""
    from dwp_hub.card import ArchConfig
    from dwp_hub.training.fit import FitRecipe, NonFiniteLossError, fit_vae
    from dwp_hub.training.harvest import KernelDataset
    from dwp_hub.training.publish import make_card, source_info, write_version_folder

    data = KernelDataset.load(kernels)
    k = int(data.train.shape[-1])
    defaults = {7: ("conv7", 2, 32), 5: ("conv5", 4, 64)}.get(k, ("mlp", 4, 32))  # mlp: cifar10-3x3@1.2.0's
    kind = kind or defaults[0]
    activation = activation or ("relu" if kind == "mlp" else "elu")
    arch = ArchConfig(kind, k, z_dim or defaults[1], hidden or defaults[2], activation)
    recipe = FitRecipe(epochs or 300, lr, batch_size, seed, iw_k)
    try:
        result = fit_vae(data, arch, recipe, progress=not quiet)
    except NonFiniteLossError as err:
        from safetensors.torch import save_file

        keep = out.with_suffix(".last-good.safetensors")
        save_file({k2: v.contiguous() for k2, v in err.last_good_state.items()}, str(keep))
        raise NonFiniteLossError(f"{err} Last good weights saved to {keep}.", err.last_good_state) from None
    card = make_card(result, data, arch, recipe, name=name, version="0.0.0", description=description,
                     source=source_info(data))
    write_version_folder(out, result.vae, card, data.held_out if len(data.held_out) else data.train)
    m = result.metrics
    console.print(f"held-out ELBO {m.heldout_elbo:.2f}, IW log-lik {m.heldout_iw_log_likelihood:.2f} nats/kernel "
                  f"(K={m.iw_k}); wrote {out}. Publish with: dwp-hub publish {out} --name NAME --version X.Y.Z --to DIR")


@_command("publish")
def publish_cmd(path: Annotated[Path, typer.Argument(help="Folder written by 'dwp-hub fit' or 'build --no-publish'.")],
                name: NameOpt, version: VersionOpt, to: ToOpt,
                description: Annotated[Optional[str], typer.Option("--description")] = None) -> None:
    """Publish a fitted prior as NAME@VERSION into a registry (versions are immutable)."""
    from dwp_hub.training.publish import publish

    dest = publish(path, name, version, to, description)
    console.print(f"Published {name}@{version} to {dest}")


@_command("build")
def build_cmd(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")], to: ToOpt,
              work_dir: WorkDirOpt = None, workers: WorkersOpt = 1, quiet: QuietOpt = False,
              no_publish: Annotated[bool, typer.Option("--no-publish", help="Stop after fitting; print the folder.")] = False) -> None:
    """Run a whole recipe: source networks, harvest, fit, evaluate, publish."""
    from dwp_hub.training.recipe import build, load_recipe

    r = load_recipe(recipe)
    dest = build(r, to, work_dir, workers, progress=not quiet, publish_it=not no_publish)
    console.print(f"{'Built' if no_publish else 'Published'} {r.name}@{r.version}: {dest}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dwp-hub")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
