"""Build commands: ``train-source``, ``harvest``, ``fit``, ``publish`` and ``build`` (the whole recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dwp_hub.cli._console import console
from dwp_hub.cli._options import (
    Activation,
    Arch,
    Augment,
    BatchSizeOpt,
    Dataset,
    DescriptionOpt,
    DeviceOpt,
    EpochsOpt,
    L2Opt,
    LicenseLinkOpt,
    LicenseNameOpt,
    LicenseOpt,
    LrOpt,
    NameOpt,
    OptNameOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    ToOpt,
    VAEKind,
    VersionOpt,
    WidthsOpt,
    WorkDirOpt,
    WorkersOpt,
)

#: Widths of each source architecture when --widths is not given (fconv: SourceRecipe's default;
#: fconv3: notmnist-3x3's; cifar: the paper's Table 2).
DEFAULT_WIDTHS = {"fconv": (256, 512), "fconv3": (32, 64, 128), "cifar": (128, 256, 256, 512)}


def _given(**values: object) -> dict[str, object]:
    """The options given on the command line (None: the recipe's default)."""
    return {k: v for k, v in values.items() if v is not None}


def _licence(base: tuple[str, str | None, str | None], license: str | None, license_name: str | None,
             license_link: str | None) -> tuple[str, str | None, str | None]:
    """``base`` under the licence options given; a licence the Hub would refuse is a usage error (exit 2)."""
    from dwp_hub.card import merge_license
    from dwp_hub.errors import CardError

    try:
        return merge_license(base, license, license_name, license_link)
    except CardError as err:
        hint = "--license-name" if err.field == "card.license_name" else "--license"
        raise typer.BadParameter(str(err), param_hint=hint) from None


def _int_list(text: str, option: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(w) for w in text.split(",") if w.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise typer.BadParameter(f"{option} takes comma-separated positive integers, e.g. {example}; got "
                                 f"{text[:80]!r}.", param_hint=option)
    return values


def train_source_cmd(
    dataset: Annotated[Dataset, typer.Option("--dataset", help="Source dataset.")] = Dataset.notmnist,
    arch: Annotated[Arch, typer.Option("--arch", help="fconv (7x7, 5x5), fconv3 (3x3) or cifar (4 widths).")] = Arch.fconv,
    widths: WidthsOpt = None,
    n_nets: Annotated[int, typer.Option("--n-nets", min=1, help="Number of source networks.")] = 10,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchSizeOpt = None,
    l2: L2Opt = None,
    augment: Annotated[Augment, typer.Option("--augment", help="Training-image augmentation.")] = Augment.none,
    seed: SeedOpt = 0,
    out: OutOpt = Path("sources"),
    workers: WorkersOpt = 1,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train source networks (one seed each) into --out, a folder of safetensors checkpoints.

    The defaults are SourceRecipe's: 10 epochs, lr 0.001, batch size 256, l2 0.001; widths 256,512
    (fconv), 32,64,128 (fconv3) or 128,256,256,512 (cifar). The shipped recipes' values (e.g.
    notmnist-7x7: --lr 0.01 --batch-size 64) are in 'dwp-hub info NAME --recipe'. Each checkpoint
    records its recipe, which harvest, fit and publish carry into the card.
    """
    from dwp_hub.model.nets import NetConfig
    from dwp_hub.training.source import SourceRecipe, summarize, train_sources

    ds, a = dataset.value, arch.value
    example = ",".join(map(str, DEFAULT_WIDTHS[a]))
    net = NetConfig(a, _int_list(widths, "--widths", example) if widths is not None else DEFAULT_WIDTHS[a],
                    3 if a == "cifar" else 1, 100 if ds == "cifar100" else 10)
    recipe = SourceRecipe(ds, net, n_nets, seed, augment=augment.value,
                          **_given(epochs=epochs, lr=lr, batch_size=batch_size, l2=l2))
    paths = train_sources(recipe, out, workers=workers, progress=not quiet, device=device)
    s = summarize(paths)
    console.print(f"{s['n']} checkpoints in {out}; validation accuracy mean {s['val_acc_mean']:.4f}, "
                  f"min {s['val_acc_min']:.4f}")


def _fraction(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise typer.BadParameter(f"must be in (0, 1], got {value}.")
    return value


def harvest_cmd(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoints (.safetensors or torch state dicts).")],
    layer: Annotated[str, typer.Option("--layer", help="fnmatch pattern on weight names, e.g. '0.weight' or "
                                                       "'layer*.conv*.weight'.")],
    kernel_size: Annotated[int, typer.Option("--kernel-size", "-k", min=1)],
    min_norm: Annotated[float | None, typer.Option("--min-norm", help="Keep kernels with L2 norm >= this.")] = None,
    top_fraction: Annotated[float | None, typer.Option("--top-fraction", callback=_fraction,
                                                       help="Keep this fraction (0 to 1) of largest-norm kernels.")] = None,
    held_out: Annotated[str, typer.Option("--held-out", help="Comma-separated indices of held-out networks.")] = "",
    max_per_net: Annotated[int | None, typer.Option("--max-per-net", min=1, help="Subsample to at most this many "
                                                                                 "kernels per net.")] = None,
    seed: SeedOpt = 0,
    balance: Annotated[bool, typer.Option("--balance", help="Rescale each net first so every hidden unit between two "
                                                            "convs has equal incoming and outgoing L2 norms (the "
                                                            "rescaling that minimises the L2 term; the function is "
                                                            "unchanged). Needs train-source checkpoints.")] = False,
    domain: Annotated[str | None, typer.Option("--domain", help="Source dataset, for checkpoints that do not record "
                                                                "it (e.g. cifar10).")] = None,
    network: Annotated[str | None, typer.Option("--network", help="Source network, for checkpoints that do not "
                                                                  "record it.")] = None,
    out: OutOpt = Path("kernels.safetensors"),
) -> None:
    """Build a kernel dataset (the --out file) from checkpoints, pruned and split by source network.

    Checkpoints go in the order given; --held-out counts from 0 in that order, and --seed draws the
    --max-per-net subsample. The dataset records the source and the recipe so far, for fit.
    """
    from dwp_hub._fs import check_output_target

    if min_norm is not None and top_fraction is not None:
        raise typer.BadParameter("Give --min-norm or --top-fraction, not both.", param_hint="--min-norm / --top-fraction")
    try:
        held = tuple(int(i) for i in held_out.split(",") if i.strip())
    except ValueError:
        raise typer.BadParameter(f"--held-out takes comma-separated network indices, e.g. 0,3; got {held_out[:80]!r}.",
                                 param_hint="--held-out") from None
    bad = [i for i in held if not 0 <= i < len(checkpoints)]
    if bad:
        raise typer.BadParameter(f"{', '.join(map(str, bad))}: there are {len(checkpoints)} checkpoints, indices 0 to "
                                 f"{len(checkpoints) - 1}.", param_hint="--held-out")
    out = check_output_target(out)
    from dwp_hub.training.harvest import HarvestSpec, PruneRule, harvest

    rule = (PruneRule("min_norm", min_norm) if min_norm is not None
            else PruneRule("top_fraction", top_fraction) if top_fraction is not None else PruneRule("none"))
    spec = HarvestSpec(layer, kernel_size, rule, held, max_per_net, seed, balance=balance)
    data = harvest([str(c) for c in checkpoints], spec, domain=domain, network=network)
    data.save(out)
    m = data.meta
    console.print(f"Kept {m['kernels_kept']} of {m['kernels_total']} kernels ({rule.describe()}"
                  f"{', nets balanced first' if balance else ''}); "
                  f"train {m['n_train']} / held-out {m['n_held_out']} -> {out}")


def _check_version_folder(out: Path) -> None:
    """``--out`` of fit: a folder that is absent, or holds only a version folder's files (an earlier fit)."""
    from dwp_hub.constants import OPTIONAL_PRIOR_FILES, PRIOR_FILES

    if not out.exists():
        return
    if not out.is_dir():
        raise typer.BadParameter(f"{str(out)[:200]!r} is not a folder; fit writes a version folder there.",
                                 param_hint="'--out' / '-o'")
    known = {*PRIOR_FILES, *OPTIONAL_PRIOR_FILES}
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in known)
    if foreign:
        raise typer.BadParameter(f"{str(out)[:200]!r} holds files that are not a prior's ({', '.join(foreign)[:200]}); "
                                 "give fit a new folder, or one an earlier fit wrote.", param_hint="'--out' / '-o'")


def fit_cmd(
    kernels: Annotated[Path, typer.Argument(help="Kernel dataset written by 'dwp-hub harvest'.")],
    out: OutOpt = Path("fitted"),
    kind: Annotated[VAEKind | None, typer.Option("--kind", help="Kernel VAE (default by kernel size: conv7, "
                                                                "conv5, else mlp).")] = None,
    z_dim: Annotated[int | None, typer.Option("--z-dim", min=1)] = None,
    hidden: Annotated[int | None, typer.Option("--hidden", min=1)] = None,
    activation: Annotated[Activation | None, typer.Option(
        "--activation", help="Hidden activation: elu (the paper's) or relu. Default: elu for conv7/conv5, "
                             "relu for mlp (as cifar10-3x3@1.2.0).")] = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchSizeOpt = None,
    seed: SeedOpt = 0,
    iw_k: Annotated[int, typer.Option("--iw-k", min=1, help="Importance samples for the held-out log-likelihood.")] = 1000,
    name: OptNameOpt = None,
    description: DescriptionOpt = None,
    license: LicenseOpt = None,
    license_name: LicenseNameOpt = None,
    license_link: LicenseLinkOpt = None,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fit a kernel VAE, evaluate it, and write a publishable folder (--out) with its card and recipe.yaml.

    The defaults are FitRecipe's, the paper's recipe: 300 epochs, lr 0.001, batch size 128. The card
    carries the provenance that train-source and harvest recorded, so 'dwp-hub publish' of the
    folder gives the card 'dwp-hub build' of its recipe.yaml would.
    """
    _check_version_folder(out)  # before the training, which can take long
    from dwp_hub.card import DEFAULT_LICENSE, ArchConfig

    lic = _licence((DEFAULT_LICENSE, None, None), license, license_name, license_link)
    from dwp_hub.errors import TrainingError
    from dwp_hub.training.fit import FitRecipe, fit_vae
    from dwp_hub.training.harvest import KernelDataset
    from dwp_hub.training.publish import draft_recipe, make_card, source_info, write_version_folder

    data = KernelDataset.load(kernels)
    k = int(data.train.shape[-1])
    defaults = {7: ("conv7", 2, 32), 5: ("conv5", 4, 64)}.get(k, ("mlp", 4, 32))  # mlp: cifar10-3x3@1.2.0's
    vae_kind = kind.value if kind is not None else defaults[0]
    act = activation.value if activation is not None else ("relu" if vae_kind == "mlp" else "elu")
    arch = ArchConfig(vae_kind, k, z_dim or defaults[1], hidden or defaults[2], act)
    recipe = FitRecipe(seed=seed, iw_k=iw_k, **_given(epochs=epochs, lr=lr, batch_size=batch_size))
    try:
        result = fit_vae(data, arch, recipe, progress=not quiet, device=device)
    except TrainingError as err:
        state = getattr(err, "last_good_state", None)
        if state is None:
            raise
        from safetensors.torch import save_file

        from dwp_hub._fs import atomic_path

        keep = out.with_suffix(".last-good.safetensors")
        with atomic_path(keep) as tmp:
            save_file({k2: v.contiguous() for k2, v in state.items()}, str(tmp))
        err.args = (f"{err} Last good weights saved to {keep}.", *err.args[1:])
        raise
    draft = name or "unpublished"
    licence = {"license": lic[0], "license_name": lic[1], "license_link": lic[2]}
    card = make_card(result, data, arch, recipe, name=draft, version="0.0.0", description=description or "",
                     source=source_info(data), **licence,
                     recipe=draft_recipe(data, arch, recipe, name=draft, version="0.0.0", description=description or "",
                                         **licence))
    write_version_folder(out, result.vae, card, data.held_out if len(data.held_out) else data.train)
    m = result.metrics
    console.print(f"held-out ELBO {m.heldout_elbo:.2f}, IW log-lik {m.heldout_iw_log_likelihood:.2f} nats/kernel "
                  f"(K={m.iw_k}); wrote {out}. Publish with: dwp-hub publish {out} --name NAME --version X.Y.Z --to DIR")


def publish_cmd(
    path: Annotated[Path, typer.Argument(help="Folder written by 'dwp-hub fit' or 'build --no-publish'.")],
    name: NameOpt,
    version: VersionOpt,
    to: ToOpt,
    description: DescriptionOpt = None,
    license: LicenseOpt = None,
    license_name: LicenseNameOpt = None,
    license_link: LicenseLinkOpt = None,
) -> None:
    """Publish a fitted prior as NAME@VERSION into a registry or to the Hub (versions are immutable).

    The card and its recipe (recipe.yaml) take the new name, version and description, and the
    licence options when given (the card's licence otherwise).
    """
    from dwp_hub.training.publish import publish

    given = {"license": license, "license_name": license_name, "license_link": license_link}
    if any(v is not None for v in given.values()):  # a licence the Hub would refuse: a usage error, before any work
        from dwp_hub.card import DEFAULT_LICENSE, card_from_weights_file
        from dwp_hub.errors import DwpHubError

        try:
            old = card_from_weights_file(path / "model.safetensors")
            base = (old.license, old.license_name, old.license_link)
        except DwpHubError:  # publish reports an unreadable folder
            base = (DEFAULT_LICENSE, None, None)
        _licence(base, license, license_name, license_link)
    result = publish(path, name, version, to, description, **given)
    console.print(f"Published {result.spec} to {result}")


def build_cmd(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (e.g. from 'dwp-hub info NAME --recipe').")],
    to: ToOpt,
    work_dir: WorkDirOpt = None,
    workers: WorkersOpt = 1,
    device: DeviceOpt = None,
    quiet: QuietOpt = False,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Stop after fitting; print the folder.")] = False,
    license: LicenseOpt = None,
    license_name: LicenseNameOpt = None,
    license_link: LicenseLinkOpt = None,
) -> None:
    """Run a whole recipe: source networks, harvest, fit, evaluate, publish.

    The licence options replace the recipe's licence; the card's recipe and the version's
    recipe.yaml then say so.
    """
    from dwp_hub.training.recipe import build, load_recipe

    r = load_recipe(recipe)
    if (license, license_name, license_link) != (None, None, None):
        lic = _licence((r.license, r.license_name, r.license_link), license, license_name, license_link)
        r = r.with_license(*lic)
    dest = build(r, to, work_dir, workers, progress=not quiet, publish_it=not no_publish, device=device)
    console.print(f"{'Built' if no_publish else 'Published'} {r.name}@{r.version}: {dest}")
