"""``dwp-hub vi``: variational inference on the MNIST-10k protocol with hub priors (paper Section 4.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dwp_hub.cli._console import console
from dwp_hub.cli._options import (
    BatchSizeOpt,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    L2Opt,
    LrOpt,
    QuietOpt,
    SeedOpt,
    VIBound,
    VIDataset,
    VIPrecision,
    VIPrior,
    WidthsOpt,
)

#: Old spellings still read, hidden from ``--help`` (each names another thing elsewhere: ``-n`` is sample's
#: number of kernels, ``--dataset`` train-source's source dataset): old spelling -> (parameter, new spelling).
OLD_SPELLINGS = {"-n": ("n_train", "--n-train"), "--dataset": ("target_data", "--target-data")}


def _old_spelling(ctx: typer.Context, name: str, value: Any, old_value: Any) -> Any:
    """``value`` of the parameter ``name``, or what its old spelling gave (both at once must agree)."""
    if old_value is None:
        return value
    old, new = next((o, n) for o, (p, n) in OLD_SPELLINGS.items() if p == name)
    source = ctx.get_parameter_source(name)  # typer may vendor click: compare the enum's name
    if source is not None and source.name != "DEFAULT" and value != old_value:
        raise typer.BadParameter(f"{old} is the old spelling of {new}; give one of them.", param_hint=old)
    return old_value


def vi_cmd(
    ctx: typer.Context,
    prior_choice: Annotated[VIPrior, typer.Option("--prior", help="Prior over the conv kernels (deterministic: the L2 "
                                                               "baseline).")] = VIPrior.dwp,
    n_train: Annotated[int, typer.Option("--n-train", min=10, max=5000, help="Training examples (MNIST-10k "
                                                                            "protocol).")] = 50,
    seed: SeedOpt = 0,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchSizeOpt = None,
    dwp: Annotated[list[str] | None, typer.Option("--dwp", help="Deep weight prior per kernel size, K=SPEC (repeatable); default 7=notmnist-7x7 and 5=notmnist-5x5.")] = None,
    bound_choice: Annotated[VIBound, typer.Option("--bound", help="fast (subsampled kernels) or full (paper).")] = VIBound.fast,
    kernels_per_step: Annotated[int | None, typer.Option("--kernels-per-step", min=1, help="Kernels per layer and step of the fast bound.")] = None,
    mc_samples: Annotated[int, typer.Option("--mc-samples", min=1, help="(w, z) samples per kernel of the DWP bound.")] = 1,
    l2: L2Opt = None,
    eval_mc: Annotated[int, typer.Option("--eval-mc", min=1, help="Stochastic passes of the MC ensemble.")] = 10,
    widths: WidthsOpt = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint file (.safetensors); resumes if it exists.")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore an existing checkpoint and start over.")] = False,
    threads: Annotated[int, typer.Option("--threads", min=0, help="torch threads (0: torch's default).")] = 0,
    target_data: Annotated[VIDataset, typer.Option("--target-data", help="Target data: mnist (priors learned on "
                                                                         "notMNIST, the paper's direction) or "
                                                                         "notmnist (priors learned on MNIST: the "
                                                                         "reverse direction).")] = VIDataset.mnist,
    precision: Annotated[VIPrecision, typer.Option("--precision", help="Arithmetic of the training forward pass: "
                                                                      "fp32, or bf16 autocast (only where bfloat16 "
                                                                      "is native: a CPU with AVX512-BF16 or AMX, a "
                                                                      "CUDA GPU with bf16).")] = VIPrecision.fp32,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    n_train_old: Annotated[int | None, typer.Option("-n", hidden=True, min=10, max=5000,
                                                    help="Old spelling of --n-train.")] = None,
    dataset_old: Annotated[VIDataset | None, typer.Option("--dataset", hidden=True,
                                                          help="Old spelling of --target-data.")] = None,
) -> None:
    """Train the paper's 32/128 MNIST net by variational inference and report test accuracy.

    The defaults are VIRecipe's, the paper's recipe: 10000 epochs, lr 0.001, batch size 256 (the
    whole set per step when N <= it), l2 0.001 (the deterministic baseline's penalty); widths 32,128.
    """
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference.layers import to_bayesian_report
    from dwp_hub.inference.vi import VIRecipe, bf16_supported, fit_deterministic, fit_vi
    from dwp_hub.paper import PAPER_DWP, PAPER_WIDTHS, paper_net

    n_train = _old_spelling(ctx, "n_train", n_train, n_train_old)
    target_data = _old_spelling(ctx, "target_data", target_data, dataset_old)
    prior, bound = prior_choice.value, bound_choice.value
    if threads:
        torch.set_num_threads(threads)
    table: dict[int, str] = dict(PAPER_DWP) if target_data is VIDataset.mnist else {
        k: v.replace("notmnist-", "mnist-", 1) for k, v in PAPER_DWP.items()}  # the reverse direction's priors
    for item in dwp or []:
        size, sep, spec = item.partition("=")
        if not sep or not size.strip().isdigit() or not spec.strip():
            raise typer.BadParameter(f"--dwp takes KERNEL_SIZE=SPEC, e.g. 5=notmnist-5x5; got {item[:80]!r}.",
                                     param_hint="--dwp")
        table[int(size)] = spec.strip()
    h0, h1 = PAPER_WIDTHS
    if widths is not None:
        try:
            h0, h1 = (int(w) for w in widths.split(","))
            if min(h0, h1) < 1:
                raise ValueError(widths)
        except ValueError as err:
            raise typer.BadParameter(f"--widths takes two positive integers like 32,128; got {widths[:80]!r}.",
                                     param_hint="--widths") from err
    where = device or "cpu"  # a device this machine has (DeviceOpt checks it)
    if precision is VIPrecision.bf16 and not bf16_supported(where):
        raise typer.BadParameter(f"bf16 needs native bfloat16 on {where} (a CPU with AVX512-BF16 or AMX, or a CUDA "
                                 "GPU with bf16); here it would be emulated and slower. Use --precision fp32.",
                                 param_hint="--precision")
    given = {k: v for k, v in {"epochs": epochs, "lr": lr, "batch_size": batch_size, "l2": l2}.items()
             if v is not None}  # the rest: VIRecipe's defaults
    recipe = VIRecipe(seed=seed, eval_mc=eval_mc, precision=precision.value, **given)
    split = mnist10k_protocol(n_train, seed, dataset=target_data.value)
    model = paper_net(prior, dwp_priors=table, widths=(h0, h1), seed=seed, bound=bound,
                      kernels_per_step=kernels_per_step, mc_samples=mc_samples)
    fit = fit_deterministic if prior == "deterministic" else fit_vi
    result = fit(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
                 checkpoint=checkpoint, resume=not no_resume, progress=not quiet,
                 metadata={"protocol": split.protocol}, device=device)
    report = to_bayesian_report(model)
    out = {
        "prior": prior, "n_train": n_train, "seed": seed, "epochs": recipe.epochs, "precision": recipe.precision,
        "steps": result.steps,
        "resumed_from": result.resumed_from, "seconds": round(result.seconds, 2),
        "total_seconds": None if result.total_seconds is None else round(result.total_seconds, 2),
        "ms_per_step": round(result.ms_per_step, 2), **{k: round(v, 4) for k, v in result.metrics.items()},
        "final": result.final, "layers": [list(c) for c in report.converted] if report else [],
        "protocol": split.protocol,
    }
    if as_json:
        console.print_json(json.dumps(out))
        return
    m = result.metrics
    console.print(f"{prior}, N={n_train}, seed {seed}: test accuracy {m['acc_ensemble']:.4f} (MC ensemble of "
                  f"{eval_mc}), {m['acc_mean']:.4f} (mean weights); {result.steps} steps, "
                  f"{result.ms_per_step:.1f} ms/step{' (bf16 forward pass)' if recipe.precision == 'bf16' else ''}. "
                  f"{split.protocol}.")
