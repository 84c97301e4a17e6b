"""Reproduce the paper's Fig. 4a and 4b: convergence from three initialisations (Section 4.3).

(b) The paper's MNIST ConvNet (Table 2: Conv(1→32, 7) → LeakyReLU → MaxPool2 → Conv(32→128, 5) →
    LeakyReLU → MaxPool2 → Linear(128·9 → 10)), all layers trained with Adam; test accuracy
    against training steps, and the steps each initialisation needs to reach 0.96.
(a) The convolutional VAE of Table 2 (MNIST column): encoder Conv(1→64, 7, stride 2) → Conv(64→128, 5)
    → two Linear(128·7·7 → z) heads (mean, softplus variance); decoder ConvT(z→128, 5) (1→5) →
    ConvT(128→64, 5, stride 2) (→13) → ConvT(64→1, 5, stride 2, padding 1, output padding 1) (→28),
    Bernoulli likelihood on pixel intensities, LeakyReLU between layers. Table 2 does not give
    z_hid; ``--z-dim 78`` (the default) brings the count to 1,642,909 parameters, the nearest to
    Table 2's 1,641,665 (no integer z matches it exactly with this layer list). ELBO (nats per
    image) against training steps.

Initialisations of every conv / transposed-conv kernel: ``dwp`` (decoder means of z ~ N(0, I)
from notmnist-7x7 for 7x7 and notmnist-5x5 for 5x5 kernels), ``xavier`` (Xavier-uniform), and
``filters`` (learned kernels of the notMNIST source networks drawn with replacement). Linear
layers are Xavier-uniform and biases zero in every arm.

Data: the MNIST-10k protocol (train on images 0-4999 of the MNIST test file, evaluate on
5000-9999); the paper used the full 60k / 10k MNIST.

Example (the committed results)::

    DWP_HUB_DATA=../shared/data nice -n 10 .venv/bin/python tools/fig4.py --seeds 5 --out docs/results

Re-running with the same ``--out`` resumes: finished (part, method, seed) runs are kept.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _initexp as X
import _runlog as runlog

FIELDS = ["part", "method", "seed", "config", "step", "metric", "train_metric", "seconds"]
TARGET_ACC = 0.96


# -- models -------------------------------------------------------------------------------------------
class ConvVAE(nn.Module):
    """The convolutional VAE of the paper's Table 2 (MNIST column); see the module docstring."""

    def __init__(self, z_dim: int = 78) -> None:
        super().__init__()
        act = nn.LeakyReLU
        self.encoder = nn.Sequential(nn.Conv2d(1, 64, 7, stride=2), act(), nn.Conv2d(64, 128, 5), act(), nn.Flatten())
        self.mean = nn.Linear(128 * 7 * 7, z_dim)
        self.var = nn.Linear(128 * 7 * 7, z_dim)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 128, 5), act(),
            nn.ConvTranspose2d(128, 64, 5, stride=2), act(),
            nn.ConvTranspose2d(64, 1, 5, stride=2, padding=1, output_padding=1),
        )

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per-image ELBO (nats), one z sample: E log Bernoulli(x | decoder(z)) − KL(q(z|x) ‖ N(0, I))."""
        h = self.encoder(x)
        mu, var = self.mean(h), F.softplus(self.var(h))
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        logits = self.decoder((mu + var.sqrt() * eps)[:, :, None, None])
        rec = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (var + mu**2 - 1.0 - var.log()).sum(1)
        return rec - kl


def _linear_schedule(steps: int, every: int) -> list[int]:
    return sorted({0, *range(every, steps + 1, every), steps})


# -- (b) ConvNet accuracy against steps -------------------------------------------------------------------
@torch.no_grad()
def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    net.eval()
    correct = sum((net(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item() for i in range(0, len(x), batch))
    net.train()
    return correct / len(x)


def run_convnet(method: str, seed: int, args: argparse.Namespace, data: tuple, priors: dict | None,
                bank: X.FilterBank | None) -> list[dict]:
    from dwp_hub.model.nets import NetConfig, build_net

    x_tr, y_tr, x_te, y_te = data
    g = torch.Generator().manual_seed(seed)
    net = X.init_net_(build_net(NetConfig("fconv", tuple(args.net_widths))), method, g, priors, bank)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    evals = set(_linear_schedule(args.steps, args.eval_every))
    rows, losses, t = [], [], X.Timer()
    perm, pos = torch.randperm(len(x_tr), generator=g), 0
    for step in range(args.steps + 1):
        if step in evals:
            acc = _accuracy(net, x_te[: args.eval_n], y_te[: args.eval_n])
            rows.append({"step": step, "metric": f"{acc:.4f}",
                         "train_metric": f"{np.mean(losses):.4f}" if losses else "", "seconds": f"{t():.1f}"})
            losses = []
        if step == args.steps:
            break
        if pos + args.batch_size > len(perm):
            perm, pos = torch.randperm(len(x_tr), generator=g), 0
        idx = perm[pos : pos + args.batch_size]
        pos += args.batch_size
        loss = F.cross_entropy(net(x_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return rows


# -- (a) VAE ELBO against steps ---------------------------------------------------------------------------------
@torch.no_grad()
def _elbo(vae: ConvVAE, x: torch.Tensor, batch: int = 500) -> float:
    g = torch.Generator().manual_seed(1234)  # the same z noise at every evaluation
    return float(torch.cat([vae.elbo(x[i : i + batch], g) for i in range(0, len(x), batch)]).mean())


def run_vae(method: str, seed: int, args: argparse.Namespace, data: tuple, priors: dict | None,
            bank: X.FilterBank | None) -> list[dict]:
    x_tr, _, x_te, _ = data
    g = torch.Generator().manual_seed(seed)
    vae = X.init_net_(ConvVAE(args.z_dim), method, g, priors, bank)
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    evals = set(_linear_schedule(args.vae_steps, args.vae_eval_every))
    rows, elbos, t = [], [], X.Timer()
    perm, pos = torch.randperm(len(x_tr), generator=g), 0
    for step in range(args.vae_steps + 1):
        if step in evals:
            val = _elbo(vae, x_te[: args.vae_eval_n])
            rows.append({"step": step, "metric": f"{val:.2f}",
                         "train_metric": f"{np.mean(elbos):.2f}" if elbos else "", "seconds": f"{t():.1f}"})
            elbos = []
        if step == args.vae_steps:
            break
        if pos + args.vae_batch_size > len(perm):
            perm, pos = torch.randperm(len(x_tr), generator=g), 0
        idx = perm[pos : pos + args.vae_batch_size]
        pos += args.vae_batch_size
        elbo = vae.elbo(x_tr[idx], g).mean()
        opt.zero_grad(set_to_none=True)
        (-elbo).backward()
        opt.step()
        elbos.append(elbo.item())
    return rows


# -- driver ---------------------------------------------------------------------------------------------------
def _config(part: str, args: argparse.Namespace) -> str:
    if part == "b":
        return (f"fconv{tuple(args.net_widths)} steps {args.steps} batch {args.batch_size} lr {args.lr} "
                f"eval_n {args.eval_n}")
    return f"vae z {args.z_dim} steps {args.vae_steps} batch {args.vae_batch_size} lr {args.lr} eval_n {args.vae_eval_n}"


def run(args: argparse.Namespace, priors: dict | None, bank: X.FilterBank | None) -> dict[str, X.ResultFile]:
    seeds, methods = X.parse_seeds(args.seeds), [m.strip() for m in args.methods.split(",")]
    files = {p: X.ResultFile(args.out / f"fig4{p}.csv", FIELDS) for p in args.part}
    data = X.mnist_protocol()
    for part in args.part:
        res, cfg = files[part], _config(part, args)
        todo = [(m, s) for s in seeds for m in methods if not res.has(part=part, method=m, seed=s, config=cfg)]
        if args.report_only:
            todo = []
        print(f"fig4{part}: {len(todo)} run(s) to do ({cfg})", flush=True)
        if todo:  # every command that added rows to this part's CSV
            runlog.record(args.out / f"fig4{part}.commands.txt", args.command)
        for method, seed in todo:
            t = X.Timer()
            rows = (run_convnet if part == "b" else run_vae)(method, seed, args, data, priors, bank)
            res.add({"part": part, "method": method, "seed": seed, "config": cfg, **r} for r in rows)
            last = rows[-1]
            extra = ""
            if part == "b":
                hit = next((r["step"] for r in rows if float(r["metric"]) >= TARGET_ACC), None)
                extra = f", reaches {TARGET_ACC} at step {hit}"
            print(f"  fig4{part} {method:<7} seed {seed}: step {last['step']} metric {last['metric']}{extra} "
                  f"({t():.0f}s)", flush=True)
    return files


def _curves(res: X.ResultFile, cfg: str, method: str, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Steps and metric array [seeds, steps] for complete runs."""
    per_seed = []
    for s in seeds:
        rows = [r for r in res.rows if r["method"] == method and r["seed"] == str(s) and r["config"] == cfg]
        if rows:
            per_seed.append(sorted((int(r["step"]), float(r["metric"])) for r in rows))
    if not per_seed:
        return np.array([]), np.empty((0, 0))
    steps = np.array([st for st, _ in per_seed[0]])
    return steps, np.array([[v for _, v in run] for run in per_seed])


def _steps_to(steps: np.ndarray, accs: np.ndarray, target: float) -> list[float]:
    out = []
    for run in accs:
        hit = np.flatnonzero(run >= target)
        out.append(float(steps[hit[0]]) if len(hit) else math.nan)
    return out


def _fmt(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _plot(curves: dict, path: Path, ylabel: str, title: str, hline: float | None = None,
          ylim: tuple[float | None, float | None] | None = None,
          paper: dict[str, tuple[float, float]] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, (steps, vals) in curves.items():
        if not len(steps):
            continue
        mean, std = vals.mean(0), vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(len(steps))
        ax.plot(steps, mean, color=X.COLORS.get(m), label=f"{X.LABELS.get(m, m)} (n={len(vals)})")
        ax.fill_between(steps, mean - std, mean + std, color=X.COLORS.get(m), alpha=0.2)
    for m, (x, y) in (paper or {}).items():
        ax.plot([x], [y], marker="X", ms=9, ls="none", color=X.COLORS.get(m), markeredgecolor="black",
                label=f"{X.LABELS.get(m, m)} (paper, full MNIST)")
    if hline is not None:
        ax.axhline(hline, color="grey", ls=":", lw=1)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_xlabel("training steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _commands(out: Path, part: str) -> list[str]:
    """Lines naming the commands that produced this part's rows (``fig4{part}.commands.txt``)."""
    cmds = runlog.commands(out / f"fig4{part}.commands.txt")
    return ["Rows from: " + "; ".join(f"`{c}`" for c in cmds) + ".", ""] if cmds else []


def summarize(files: dict[str, X.ResultFile], args: argparse.Namespace, priors_note: str, bank_note: str) -> None:
    seeds, methods = X.parse_seeds(args.seeds), [m.strip() for m in args.methods.split(",")]
    lines = ["# Fig. 4: convergence from three initialisations", "",
             (f"Report rebuilt by: `{args.command} --report-only` (the runs: see each part)" if args.report_only
              else f"Command: `{args.command}`"), "",
             f"- Data: {X.PROTOCOL}. The paper used the full MNIST (60k train / 10k test).",
             f"- Priors: {priors_note}.",
             f"- Learned filters: {bank_note}; drawn uniformly with replacement for every kernel slice.",
             ("- Kernel scale, median L2 norm of prior samples (decoder means of z ~ N(0, I)) against the learned "
              f"kernels: {args.scale_note}."),
             ("- Every conv and transposed-conv kernel is initialised by the method; linear layers Xavier-uniform, "
             "biases zero, in every arm. Adam (lr "
             f"{args.lr}, constant, default betas), as in the paper. Seeds: {', '.join(map(str, seeds))} "
             "(each seed: the init, the batch order and the VAE noise)."),
             f"- Machine: {X.machine_note()}.", ""]
    if "b" in files:
        cfg = _config("b", args)
        curves = {m: _curves(files["b"], cfg, m, seeds) for m in methods}
        _plot(curves, args.out / "fig4b.png", f"test accuracy (images 5000-{5000 + args.eval_n - 1})",
              f"Fig. 4b: fconv{tuple(args.net_widths)} on MNIST, batch {args.batch_size}", TARGET_ACC, (0.8, 1.0),
              {"dwp": (50, TARGET_ACC), "xavier": (100, TARGET_ACC)})
        lines += ["## (b) ConvNet on MNIST: accuracy against training steps", "", *_commands(args.out, "b"),
                  (f"The paper's MNIST net, widths {tuple(args.net_widths)}, all layers trained, batch {args.batch_size}; "
                  f"test accuracy on {args.eval_n} images 5000-{5000 + args.eval_n - 1} every {args.eval_every} steps."),
                  (f"Paper (Fig. 4b, full MNIST): dwp and learned filters pass {TARGET_ACC} after about 50 steps, "
                  "Xavier after about 100."), ""]
        grid = set(_linear_schedule(args.steps, args.eval_every))
        marks = [s for s in (20, 25, 40, 50, 60, 100, 200, 300, 400, 500, 1000) if s in grid]
        lines += ["| init | steps to 0.96 (mean ± std) | per seed |" + "".join(f" acc @ {s} |" for s in marks),
                  "|---|---|---|" + "---|" * len(marks)]
        reach = {}
        for m in methods:
            steps, accs = curves[m]
            if not len(steps):
                continue
            hits = _steps_to(steps, accs, TARGET_ACC)
            reach[m] = hits
            cells = []
            for s in marks:
                j = int(np.searchsorted(steps, s))
                cells.append(_fmt(accs[:, j].mean(), accs[:, j].std(ddof=1) if len(accs) > 1 else 0.0)
                             if j < len(steps) and steps[j] == s else "-")
            finite = [h for h in hits if not math.isnan(h)]
            mean = (f"{np.mean(finite):.0f} ± {np.std(finite, ddof=1) if len(finite) > 1 else 0:.0f}"
                    + ("" if len(finite) == len(hits) else f" ({len(hits) - len(finite)} never)")) if finite else "never"
            per = ", ".join("never" if math.isnan(h) else f"{h:.0f}" for h in hits)
            lines.append(f"| {X.LABELS.get(m, m)} | {mean} | {per} |" + "".join(f" {c} |" for c in cells))
        if "dwp" in reach and "xavier" in reach:
            d = [h for h in reach["dwp"] if not math.isnan(h)]
            x = [h for h in reach["xavier"] if not math.isnan(h)]
            head = f"Target: dwp reaches {TARGET_ACC} in at most 60% of Xavier's steps."
            if len(x) == len(reach["xavier"]) and len(d) == len(reach["dwp"]):
                ratio = np.mean(d) / np.mean(x)
                lines += ["", (f"{head} Measured: {np.mean(d):.0f} / {np.mean(x):.0f} = **{ratio:.0%}** of Xavier's steps "
                               f"(mean over seeds; median {np.median(d):.0f} / {np.median(x):.0f} = "
                               f"{np.median(d) / np.median(x):.0%}): target {'met' if ratio <= 0.6 else 'NOT met'}.")]
            elif len(x) == len(reach["xavier"]):
                lines += ["", (f"{head} Measured: Xavier reaches it after {np.mean(x):.0f} steps (mean), while "
                               f"{len(reach['dwp']) - len(d)} of {len(reach['dwp'])} dwp runs never reach it within "
                               f"{args.steps} steps: target **NOT met**.")]
            else:
                lines += ["", (f"{head} Undecided: {len(reach['xavier']) - len(x)} Xavier run(s) never reached "
                               f"{TARGET_ACC} within {args.steps} steps; run longer (--steps).")]
        lines += ["", "![Fig. 4b](fig4b.png)", "", "Per-evaluation rows: [fig4b.csv](fig4b.csv).", ""]
    if "a" in files:
        cfg = _config("a", args)
        curves = {m: _curves(files["a"], cfg, m, seeds) for m in methods}
        lo = min((float(v[:, 1:].min()) for s, v in curves.values() if len(s) > 1), default=-300)
        _plot(curves, args.out / "fig4a.png", f"test ELBO, nats per image ({args.vae_eval_n} images)",
              f"Fig. 4a: conv VAE on MNIST, batch {args.vae_batch_size}", None, (max(lo, -400), -100),
              {"dwp": (200, -120), "xavier": (200, -160)})
        n_params = sum(p.numel() for p in ConvVAE(args.z_dim).parameters())
        lines += ["## (a) Convolutional VAE on MNIST: ELBO against training steps", "", *_commands(args.out, "a"),
                  (f"Table 2's VAE with z_hid {args.z_dim} ({n_params:,} parameters; Table 2: 1,641,665), batch "
                  f"{args.vae_batch_size}; ELBO (one z sample, fixed noise) on {args.vae_eval_n} images "
                  f"5000-{5000 + args.vae_eval_n - 1} every {args.vae_eval_every} steps."),
                  "Paper (Fig. 4a, full MNIST): about −120 after 200 steps with dwp against about −160 with Xavier.", ""]
        grid = set(_linear_schedule(args.vae_steps, args.vae_eval_every))
        marks = [s for s in (25, 50, 100, 200, 300, 500) if s in grid]
        lines += ["| init |" + "".join(f" ELBO @ {s} |" for s in marks), "|---|" + "---|" * len(marks)]
        for m in methods:
            steps, vals = curves[m]
            if not len(steps):
                continue
            cells = []
            for s in marks:
                j = int(np.searchsorted(steps, s))
                cells.append(_fmt(vals[:, j].mean(), vals[:, j].std(ddof=1) if len(vals) > 1 else 0.0, 1)
                             if j < len(steps) and steps[j] == s else "-")
            lines.append(f"| {X.LABELS.get(m, m)} (n={len(vals)}) |" + "".join(f" {c} |" for c in cells))
        lines += ["", "![Fig. 4a](fig4a.png)", "", "Per-evaluation rows: [fig4a.csv](fig4a.csv).", ""]
    (args.out / "fig4.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="ba", help="'a' (VAE), 'b' (ConvNet) or both ('ba')")
    ap.add_argument("--seeds", default="5", help="N (seeds 0..N-1), a list '0,1,2' or a range '0-4'")
    ap.add_argument("--widths", default="32,128", help="conv widths of the (b) ConvNet")
    ap.add_argument("--steps", type=int, default=400, help="(b) training steps")
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--eval-n", type=int, default=1000, help="(b) test images (from 5000) per evaluation")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--vae-steps", type=int, default=200, help="(a) training steps")
    ap.add_argument("--vae-eval-every", type=int, default=25)
    ap.add_argument("--vae-eval-n", type=int, default=500, help="(a) test images (from 5000) per evaluation")
    ap.add_argument("--vae-batch-size", type=int, default=32)
    ap.add_argument("--z-dim", type=int, default=78)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=X.REPO / "docs/results")
    ap.add_argument("--methods", default=",".join(X.METHODS))
    ap.add_argument("--prior7", default="notmnist-7x7")
    ap.add_argument("--prior5", default="notmnist-5x5")
    ap.add_argument("--random-priors", action="store_true", help="untrained stand-in priors (smoke tests)")
    ap.add_argument("--sources", type=Path, nargs="*", help="source checkpoints for learned filters")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the markdown and plot from the CSV")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default); one thread "
                    "wastes least CPU on a shared, busy machine")
    args = ap.parse_args(argv)
    shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    args.command = " ".join(["DWP_HUB_DATA=../shared/data python tools/fig4.py", *map(shlex.quote, shown)])
    args.net_widths = [int(w) for w in args.widths.split(",")]
    if not set(args.part) <= {"a", "b"}:
        ap.error("--part takes 'a', 'b' or 'ba'")
    args.part = sorted(set(args.part), reverse=True)  # (b) first: it carries the headline target
    X.set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    t = X.Timer()
    use_prior = any(m.startswith("dwp") for m in methods)
    priors = X.load_priors({7: args.prior7, 5: args.prior5}, random=args.random_priors) if use_prior else None
    bank = X.learned_filters(args.sources) if "filters" in methods else None
    files = run(args, priors, bank)
    for part in "ba":  # the report covers both parts whenever their CSV exists
        if part not in files and (args.out / f"fig4{part}.csv").is_file():
            files[part] = X.ResultFile(args.out / f"fig4{part}.csv", FIELDS)
    files = {p: files[p] for p in "ba" if p in files}
    args.scale_note = X.scale_check(priors, bank)
    summarize(files, args, X.describe_priors(priors) if priors else "not used", bank.description if bank else "not used")
    print(f"fig4 done in {t():.0f}s; wrote {args.out}/fig4*.csv, fig4*.png, fig4.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
