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

Config-first: :class:`Fig4Config` (``--config FILE``, flags override). Rows (one per evaluation) are keyed by
(part, method, seed, step) and the hash of the settings that produced them (the part's budget; the pinned priors
for dwp rows, the source checkpoints for learned-filter rows); re-running with the same ``--out`` resumes.
Interpretation comes from the config's ``notes`` and ``OUT/fig4.notes.md``.

Example (the committed results; ``--seeds 10``, a bare number, is the old count syntax: seeds 0-9)::

    DWP_HUB_DATA=../shared/data nice -n 10 .venv/bin/python tools/fig4.py --seeds 0-9 --out docs/results
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/fig4.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import functools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dwp_hub.paper import PAPER_DWP, PAPER_WIDTHS
from tools import _initexp as X
from tools._experiment import (
    GRID,
    RANDOM_SPEC,
    REPO,
    RUN,
    ExperimentConfig,
    ResultFile,
    Timer,
    format_kernel_specs,
    machine_note,
    notes_section,
    parse_seeds,
    seeds_or_legacy_count,
    setting,
)

FIELDS = ["part", "method", "seed", "config", "step", "metric", "train_metric", "seconds"]
KEY = ("part", "method", "seed", "step")
TARGET_ACC = 0.96


def parse_parts(value: Any) -> tuple[str, ...]:
    """``"a"`` (the VAE), ``"b"`` (the ConvNet) or both (``"ba"``, or a YAML list); (b) first: it carries the
    headline target."""
    parts = set("".join(value) if isinstance(value, (list, tuple)) else str(value).replace(",", ""))
    if not parts or not parts <= {"a", "b"}:
        raise ValueError("--part takes 'a', 'b' or 'ba'")
    return tuple(sorted(parts, reverse=True))


def _int_list(value: Any) -> tuple[int, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(int(v) for v in items if str(v).strip())


@dataclasses.dataclass(frozen=True)
class Fig4Config(ExperimentConfig):
    """Fig. 4: convergence of the paper's ConvNet (b) and conv VAE (a) from three initialisations."""

    NAME = "fig4"

    parts: tuple[str, ...] = setting(("b", "a"), "'a' (VAE), 'b' (ConvNet) or both ('ba')", flags=("--part",),
                                     role=GRID, parse=parse_parts)
    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), "seeds: 0-4, 0,3 or 3 (on the command line a bare number N "
                                     "is the old count syntax, seeds 0..N-1)", role=GRID, parse=parse_seeds,
                                     cli_parse=functools.partial(seeds_or_legacy_count, script="fig4"))
    methods: tuple[str, ...] = setting(X.METHODS, "init methods", role=GRID, parse=X.parse_methods)
    widths: tuple[int, ...] = setting(PAPER_WIDTHS, "conv widths of the (b) ConvNet", parse=_int_list)
    steps: int = setting(400, "(b) training steps")
    eval_every: int = setting(20, "(b) steps between evaluations")
    eval_n: int = setting(1000, "(b) test images (from 5000) per evaluation")
    batch_size: int = setting(32, "(b) batch size")
    vae_steps: int = setting(200, "(a) training steps")
    vae_eval_every: int = setting(25, "(a) steps between evaluations")
    vae_eval_n: int = setting(500, "(a) test images (from 5000) per evaluation")
    vae_batch_size: int = setting(32, "(a) batch size")
    z_dim: int = setting(78, "(a) latent dimension")
    lr: float = setting(1e-3, "Adam learning rate (both parts)")
    prior7: str = setting(PAPER_DWP[7], "the 7x7 prior (pinned to its newest version when unversioned)")
    prior5: str = setting(PAPER_DWP[5], "the 5x5 prior (pinned to its newest version when unversioned)")
    random_priors: bool = setting(False, "untrained stand-in priors (smoke tests)")
    sources: tuple[Path, ...] = setting((), "source checkpoints for learned filters (default: the notMNIST source "
                                            "nets under runs/)", nargs="*")
    out_dir: Path = setting(REPO / "docs" / "results", "output folder (CSVs, plots, report)",
                            flags=("--out", "--out-dir"), role=RUN)
    threads: int = setting(1, "torch threads (0: torch default); one thread wastes least CPU on a shared, busy "
                              "machine", role=RUN)

    def row_settings(self, *, part: str, method: str, **_: Any) -> dict[str, Any]:
        """The part's budget; for dwp arms the priors, for learned filters the source checkpoints."""
        out: dict[str, Any] = {"experiment": self.NAME, "part": part, "lr": self.lr}
        if part == "b":
            out.update(widths=list(self.widths), steps=self.steps, batch_size=self.batch_size, eval_n=self.eval_n,
                       eval_every=self.eval_every)
        else:
            out.update(z_dim=self.z_dim, steps=self.vae_steps, batch_size=self.vae_batch_size, eval_n=self.vae_eval_n,
                       eval_every=self.vae_eval_every)
        if method.startswith("dwp"):
            out["priors"] = RANDOM_SPEC if self.random_priors else format_kernel_specs({7: self.prior7, 5: self.prior5})
        if method == "filters":
            out["sources"] = [str(p) for p in self.sources]
        return out

    def legacy_config(self, part: str) -> str:
        """The ``config`` column the old script wrote (its resume key, with part, method and seed)."""
        return _legacy_config(self.row_settings(part=part, method="xavier"))


def _legacy_config(s: dict[str, Any]) -> str:
    if s["part"] == "b":
        return f"fconv{tuple(s['widths'])} steps {s['steps']} batch {s['batch_size']} lr {s['lr']} eval_n {s['eval_n']}"
    return f"vae z {s['z_dim']} steps {s['steps']} batch {s['batch_size']} lr {s['lr']} eval_n {s['eval_n']}"


def legacy_match(row: dict[str, str], settings: dict[str, Any]) -> bool:
    """Rows written before config hashing: the old key, the part's budget in the ``config`` column (the old script
    did not record the evaluation interval, the priors or the filters' sources)."""
    return row.get("config") == _legacy_config(settings)


def result_file(cfg: Fig4Config, part: str) -> ResultFile:
    """``OUT/fig4{part}.csv``."""
    return ResultFile(cfg.out_dir / f"fig4{part}.csv", FIELDS, KEY, legacy=legacy_match)


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


def run_convnet(method: str, seed: int, cfg: Fig4Config, data: tuple, priors: dict | None,
                bank: X.FilterBank | None) -> list[dict]:
    from dwp_hub.model.nets import NetConfig, build_net

    x_tr, y_tr, x_te, y_te = data
    g = torch.Generator().manual_seed(seed)
    net = X.init_net_(build_net(NetConfig("fconv", tuple(cfg.widths))), method, g, priors, bank)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    evals = set(_linear_schedule(cfg.steps, cfg.eval_every))
    rows, losses, t = [], [], Timer()
    perm, pos = torch.randperm(len(x_tr), generator=g), 0
    for step in range(cfg.steps + 1):
        if step in evals:
            acc = _accuracy(net, x_te[: cfg.eval_n], y_te[: cfg.eval_n])
            rows.append({"step": step, "metric": f"{acc:.4f}",
                         "train_metric": f"{np.mean(losses):.4f}" if losses else "", "seconds": f"{t():.1f}"})
            losses = []
        if step == cfg.steps:
            break
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(x_tr), generator=g), 0
        idx = perm[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
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


def run_vae(method: str, seed: int, cfg: Fig4Config, data: tuple, priors: dict | None,
            bank: X.FilterBank | None) -> list[dict]:
    x_tr, _, x_te, _ = data
    g = torch.Generator().manual_seed(seed)
    vae = X.init_net_(ConvVAE(cfg.z_dim), method, g, priors, bank)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    evals = set(_linear_schedule(cfg.vae_steps, cfg.vae_eval_every))
    rows, elbos, t = [], [], Timer()
    perm, pos = torch.randperm(len(x_tr), generator=g), 0
    for step in range(cfg.vae_steps + 1):
        if step in evals:
            val = _elbo(vae, x_te[: cfg.vae_eval_n])
            rows.append({"step": step, "metric": f"{val:.2f}",
                         "train_metric": f"{np.mean(elbos):.2f}" if elbos else "", "seconds": f"{t():.1f}"})
            elbos = []
        if step == cfg.vae_steps:
            break
        if pos + cfg.vae_batch_size > len(perm):
            perm, pos = torch.randperm(len(x_tr), generator=g), 0
        idx = perm[pos : pos + cfg.vae_batch_size]
        pos += cfg.vae_batch_size
        elbo = vae.elbo(x_tr[idx], g).mean()
        opt.zero_grad(set_to_none=True)
        (-elbo).backward()
        opt.step()
        elbos.append(elbo.item())
    return rows


# -- driver ---------------------------------------------------------------------------------------------------
def run(cfg: Fig4Config, command: str, priors: dict | None, bank: X.FilterBank | None,
        report_only: bool = False) -> dict[str, ResultFile]:
    files = {p: result_file(cfg, p) for p in cfg.parts}
    data = X.mnist_protocol()
    for part in cfg.parts:
        res = files[part]
        todo = [(m, s) for s in cfg.seeds for m in cfg.methods
                if not res.has(cfg.row_settings(part=part, method=m), part=part, method=m, seed=s)]
        if report_only:
            todo = []
        print(f"fig4{part}: {len(todo)} run(s) to do ({cfg.legacy_config(part)})", flush=True)
        if todo:  # every command that added rows to this part's CSV
            res.record(command)
        for method, seed in todo:
            t = Timer()
            rows = (run_convnet if part == "b" else run_vae)(method, seed, cfg, data, priors, bank)
            res.add(({"part": part, "method": method, "seed": seed, "config": cfg.legacy_config(part), **r}
                     for r in rows), cfg.row_settings(part=part, method=method))
            last = rows[-1]
            extra = ""
            if part == "b":
                hit = next((r["step"] for r in rows if float(r["metric"]) >= TARGET_ACC), None)
                extra = f", reaches {TARGET_ACC} at step {hit}"
            print(f"  fig4{part} {method:<7} seed {seed}: step {last['step']} metric {last['metric']}{extra} "
                  f"({t():.0f}s)", flush=True)
    return files


def _curves(res: ResultFile, cfg: Fig4Config, part: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and metric array [seeds, steps] for complete runs."""
    per_seed = []
    settings = cfg.row_settings(part=part, method=method)
    for s in cfg.seeds:
        rows = res.find(settings, part=part, method=method, seed=s)
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


def _commands(res: ResultFile) -> list[str]:
    """Lines naming the commands that produced this part's rows (``fig4{part}.commands.txt``)."""
    cmds = res.commands()
    return ["Rows from: " + "; ".join(f"`{c}`" for c in cmds) + ".", ""] if cmds else []


def summarize(files: dict[str, ResultFile], cfg: Fig4Config, command: str, report_only: bool, priors_note: str,
              bank_note: str, scale_note: str) -> None:
    seeds, methods = cfg.seeds, cfg.methods
    lines = ["# Fig. 4: convergence from three initialisations", "",
             (f"Report rebuilt by: `{command} --report-only` (the runs: see each part)" if report_only
              else f"Command: `{command}`"), "",
             f"- Data: {X.PROTOCOL}. The paper used the full MNIST (60k train / 10k test).",
             f"- Priors: {priors_note}.",
             f"- Learned filters: {bank_note}; drawn uniformly with replacement for every kernel slice.",
             ("- Kernel scale, median L2 norm of prior samples (decoder means of z ~ N(0, I)) against the learned "
              f"kernels: {scale_note}."),
             ("- Every conv and transposed-conv kernel is initialised by the method; linear layers Xavier-uniform, "
             "biases zero, in every arm. Adam (lr "
             f"{cfg.lr}, constant, default betas), as in the paper. Seeds: {', '.join(map(str, seeds))} "
             "(each seed: the init, the batch order and the VAE noise)."),
             f"- Machine: {machine_note()}. Config {cfg.sha256()}.", ""]
    if "b" in files:
        curves = {m: _curves(files["b"], cfg, "b", m) for m in methods}
        _plot(curves, cfg.out_dir / "fig4b.png", f"test accuracy (images 5000-{5000 + cfg.eval_n - 1})",
              f"Fig. 4b: fconv{tuple(cfg.widths)} on MNIST, batch {cfg.batch_size}", TARGET_ACC, (0.8, 1.0),
              {"dwp": (50, TARGET_ACC), "xavier": (100, TARGET_ACC)})
        lines += ["## (b) ConvNet on MNIST: accuracy against training steps", "", *_commands(files["b"]),
                  (f"The paper's MNIST net, widths {tuple(cfg.widths)}, all layers trained, batch {cfg.batch_size}; "
                  f"test accuracy on {cfg.eval_n} images 5000-{5000 + cfg.eval_n - 1} every {cfg.eval_every} steps."),
                  (f"Paper (Fig. 4b, full MNIST): dwp and learned filters pass {TARGET_ACC} after about 50 steps, "
                  "Xavier after about 100."), ""]
        grid = set(_linear_schedule(cfg.steps, cfg.eval_every))
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
                               f"{cfg.steps} steps: target **NOT met**.")]
            else:
                lines += ["", (f"{head} Undecided: {len(reach['xavier']) - len(x)} Xavier run(s) never reached "
                               f"{TARGET_ACC} within {cfg.steps} steps; run longer (--steps).")]
        lines += ["", "![Fig. 4b](fig4b.png)", "", "Per-evaluation rows: [fig4b.csv](fig4b.csv).", ""]
    if "a" in files:
        curves = {m: _curves(files["a"], cfg, "a", m) for m in methods}
        lo = min((float(v[:, 1:].min()) for s, v in curves.values() if len(s) > 1), default=-300)
        _plot(curves, cfg.out_dir / "fig4a.png", f"test ELBO, nats per image ({cfg.vae_eval_n} images)",
              f"Fig. 4a: conv VAE on MNIST, batch {cfg.vae_batch_size}", None, (max(lo, -400), -100),
              {"dwp": (200, -120), "xavier": (200, -160)})
        n_params = sum(p.numel() for p in ConvVAE(cfg.z_dim).parameters())
        lines += ["## (a) Convolutional VAE on MNIST: ELBO against training steps", "", *_commands(files["a"]),
                  (f"Table 2's VAE with z_hid {cfg.z_dim} ({n_params:,} parameters; Table 2: 1,641,665), batch "
                  f"{cfg.vae_batch_size}; ELBO (one z sample, fixed noise) on {cfg.vae_eval_n} images "
                  f"5000-{5000 + cfg.vae_eval_n - 1} every {cfg.vae_eval_every} steps."),
                  "Paper (Fig. 4a, full MNIST): about −120 after 200 steps with dwp against about −160 with Xavier.", ""]
        grid = set(_linear_schedule(cfg.vae_steps, cfg.vae_eval_every))
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
    lines += notes_section(cfg.notes, cfg.out_dir, "fig4")
    (cfg.out_dir / "fig4.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    setup = X.setup_run(Fig4Config, "fig4", argv, __doc__.split("\n\n")[0])
    cfg = setup.cfg
    assert isinstance(cfg, Fig4Config)
    files = run(cfg, setup.command, setup.priors, setup.bank, report_only=setup.ns.report_only)
    for part in "ba":  # the report covers both parts whenever their CSV exists
        if part not in files and (cfg.out_dir / f"fig4{part}.csv").is_file():
            files[part] = result_file(cfg, part)
    files = {p: files[p] for p in "ba" if p in files}
    summarize(files, cfg, setup.command, setup.ns.report_only, *setup.described())
    print(f"fig4 done in {setup.timer():.0f}s; wrote {cfg.out_dir}/fig4*.csv, fig4*.png, fig4.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
