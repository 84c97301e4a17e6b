"""``dwp-hub vi``: variational inference on the MNIST-10k protocol with hub priors (paper Section 4.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dwp_hub.cli._console import console
from dwp_hub.cli._options import JsonOpt, QuietOpt, SeedOpt, VIBound, VIDataset, VIPrior


def vi_cmd(
    prior_choice: Annotated[VIPrior, typer.Option("--prior", help="Prior over the conv kernels (deterministic: the L2 "
                                                               "baseline).")] = VIPrior.dwp,
    n_train: Annotated[int, typer.Option("--n-train", "-n", min=10, max=5000, help="Training examples (MNIST-10k protocol).")] = 50,
    seed: SeedOpt = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs (paper: 10,000).")] = 10_000,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate, linear decay to 0.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch (full batch when N <= it).")] = 256,
    dwp: Annotated[list[str] | None, typer.Option("--dwp", help="Deep weight prior per kernel size, K=SPEC (repeatable); default 7=notmnist-7x7 and 5=notmnist-5x5.")] = None,
    bound_choice: Annotated[VIBound, typer.Option("--bound", help="fast (subsampled kernels) or full (paper).")] = VIBound.fast,
    kernels_per_step: Annotated[int | None, typer.Option("--kernels-per-step", min=1, help="Kernels per layer and step of the fast bound.")] = None,
    mc_samples: Annotated[int, typer.Option("--mc-samples", min=1, help="(w, z) samples per kernel of the DWP bound.")] = 1,
    l2: Annotated[float, typer.Option("--l2", help="L2 weight of the deterministic baseline.")] = 1e-3,
    eval_mc: Annotated[int, typer.Option("--eval-mc", min=1, help="Stochastic passes of the MC ensemble.")] = 10,
    widths: Annotated[str, typer.Option("--widths", help="Conv widths h0,h1 of the fconv net.")] = "32,128",
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", help="Checkpoint file (.safetensors); resumes if it exists.")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Ignore an existing checkpoint and start over.")] = False,
    threads: Annotated[int, typer.Option("--threads", min=0, help="torch threads (0: torch's default).")] = 0,
    dataset: Annotated[VIDataset, typer.Option("--dataset", help="Target data: mnist (priors learned on notMNIST, the "
                                                               "paper's direction) or notmnist (priors learned on "
                                                               "MNIST: the reverse direction).")] = VIDataset.mnist,
    device: Annotated[str | None, typer.Option("--device", help="Where to train, e.g. cpu or cuda (default: cpu).")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the paper's 32/128 MNIST net by variational inference and report test accuracy."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference.layers import to_bayesian_report
    from dwp_hub.inference.vi import VIRecipe, fit_deterministic, fit_vi
    from dwp_hub.paper import PAPER_DWP, paper_net

    prior, bound = prior_choice.value, bound_choice.value
    if threads:
        torch.set_num_threads(threads)
    table: dict[int, str] = dict(PAPER_DWP) if dataset is VIDataset.mnist else {
        k: v.replace("notmnist-", "mnist-", 1) for k, v in PAPER_DWP.items()}  # the reverse direction's priors
    for item in dwp or []:
        size, sep, spec = item.partition("=")
        if not sep or not size.strip().isdigit() or not spec.strip():
            raise typer.BadParameter(f"--dwp takes KERNEL_SIZE=SPEC, e.g. 5=notmnist-5x5; got {item[:80]!r}.",
                                     param_hint="--dwp")
        table[int(size)] = spec.strip()
    try:
        h0, h1 = (int(w) for w in widths.split(","))
    except ValueError as err:
        raise typer.BadParameter(f"--widths takes two integers like 32,128; got {widths[:80]!r}.",
                                 param_hint="--widths") from err
    if device is not None:
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise typer.BadParameter(f"--device takes a torch device such as cpu or cuda; got {device[:40]!r}.",
                                     param_hint="--device") from err
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise typer.BadParameter("--device cuda: no CUDA device is available here.", param_hint="--device")
    split = mnist10k_protocol(n_train, seed, dataset=dataset.value)
    model = paper_net(prior, dwp_priors=table, widths=(h0, h1), seed=seed, bound=bound,
                      kernels_per_step=kernels_per_step, mc_samples=mc_samples)
    recipe = VIRecipe(epochs=epochs, lr=lr, batch_size=batch_size, l2=l2, seed=seed, eval_mc=eval_mc)
    fit = fit_deterministic if prior == "deterministic" else fit_vi
    result = fit(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
                 checkpoint=checkpoint, resume=not no_resume, progress=not quiet,
                 metadata={"protocol": split.protocol}, device=device)
    report = to_bayesian_report(model)
    out = {
        "prior": prior, "n_train": n_train, "seed": seed, "epochs": epochs, "steps": result.steps,
        "resumed_from": result.resumed_from, "seconds": round(result.seconds, 2),
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
                  f"{result.ms_per_step:.1f} ms/step. {split.protocol}.")
