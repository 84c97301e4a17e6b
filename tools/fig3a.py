"""Reproduce the paper's Fig. 3a: random feature extraction on MNIST (Section 4.2).

The paper's MNIST net (Table 2: Conv(1→32, 7) → LeakyReLU → MaxPool2 → Conv(32→128, 5) →
LeakyReLU → MaxPool2 → Linear(128·9 → 10); Section 4.2 uses "the same architectures as in
Section 4.1") with both conv widths scaled by k. Its conv layers are initialised from the deep
weight prior (decoder means of z ~ N(0, I)), from Xavier, or from learned filters (kernels of the
notMNIST source networks drawn with replacement), then frozen; only the linear classifier is
trained. Features are computed once per (init, k, seed).

Data: the MNIST-10k protocol (only the 10k MNIST test file is available offline): train on all
5,000 images 0-4999, evaluate on images 5000-9999.

Config-first: :class:`Fig3aConfig` (``--config FILE``, flags override). Rows are keyed by (method, k, seed) and
the hash of the settings that produced them (classifier settings; the pinned priors for dwp rows, the source
checkpoints for learned-filter rows); re-running with the same ``--out`` resumes. Interpretation comes from the
config's ``notes`` and ``OUT/fig3a.notes.md``.

Example (the committed results; ``--seeds 10``, a bare number, is the old count syntax: seeds 0-9)::

    DWP_HUB_DATA=../shared/data nice -n 10 .venv/bin/python tools/fig3a.py --seeds 0-9 --out docs/results

Smoke test with untrained stand-in priors::

    DWP_HUB_DATA=../shared/data .venv/bin/python tools/fig3a.py --random-priors --seeds 0-1 \\
        --widths 1/16,1/4 --steps 200 --out /tmp/fig3a-smoke
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/fig3a.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import functools
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
    format_seeds,
    machine_note,
    mean_std,
    notes_section,
    parse_fractions,
    parse_seeds,
    seeds_or_legacy_count,
    setting,
)

#: Fig. 3a of the paper, read off the figure (recipe-and-results.md).
PAPER = {
    "dwp": {Fraction(1, 16): 0.956, Fraction(1, 8): 0.970, Fraction(1, 4): 0.976, Fraction(1, 2): 0.980, Fraction(1): 0.983},
    "xavier": {Fraction(1, 16): 0.930, Fraction(1, 8): 0.956, Fraction(1, 4): 0.972, Fraction(1, 2): 0.979, Fraction(1): 0.983},
    "filters": {Fraction(1, 16): 0.963, Fraction(1, 8): 0.972, Fraction(1, 4): 0.979, Fraction(1, 2): 0.984, Fraction(1): 0.987},
}
BASE_WIDTHS = PAPER_WIDTHS
FIELDS = ["method", "k", "h0", "h1", "seed", "config", "test_accuracy", "train_accuracy",
          "feature_dim", "extract_seconds", "train_seconds"]
KEY = ("method", "k", "seed")


@dataclasses.dataclass(frozen=True)
class Fig3aConfig(ExperimentConfig):
    """Fig. 3a: frozen conv layers initialised three ways, a linear classifier trained on their features."""

    NAME = "fig3a"

    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), "seeds: 0-4, 0,3 or 3 (on the command line a bare number N "
                                     "is the old count syntax, seeds 0..N-1)", role=GRID, parse=parse_seeds,
                                     cli_parse=functools.partial(seeds_or_legacy_count, script="fig3a"))
    widths: tuple[Fraction, ...] = setting(parse_fractions("1/16,1/8,1/4,1/2,1"), "width scales k of (32, 128)",
                                           role=GRID, parse=parse_fractions)
    methods: tuple[str, ...] = setting(X.METHODS, "init methods", role=GRID, parse=X.parse_methods)
    steps: int = setting(1000, "classifier training steps")
    lr: float = setting(1e-2, "classifier learning rate (1e-3 under-fits in 1,000 steps: k=1/16 Xavier, seed 0, "
                              "train accuracy 0.820 against 0.885 with 1e-2)")
    batch_size: int = setting(128, "classifier batch size")
    standardize: bool = setting(True, "train the classifier on standardised features (--raw-features: raw)",
                                flags=("--raw-features",), negate=True)
    prior7: str = setting(PAPER_DWP[7], "the 7x7 prior (pinned to its newest version when unversioned)")
    prior5: str = setting(PAPER_DWP[5], "the 5x5 prior (pinned to its newest version when unversioned)")
    random_priors: bool = setting(False, "untrained stand-in priors (smoke tests)")
    sources: tuple[Path, ...] = setting((), "source checkpoints for learned filters (default: the notMNIST source "
                                            "nets under runs/)", nargs="*")
    out_dir: Path = setting(REPO / "docs" / "results", "output folder (CSV, plot, report)", flags=("--out", "--out-dir"),
                            role=RUN)
    threads: int = setting(1, "torch threads (0: torch default); one thread wastes least CPU on a shared, busy "
                              "machine", role=RUN)

    def prior_specs(self) -> str:
        return RANDOM_SPEC if self.random_priors else format_kernel_specs({7: self.prior7, 5: self.prior5})

    def row_settings(self, *, method: str, **_: Any) -> dict[str, Any]:
        """Classifier settings; for dwp arms the priors, for learned filters the source checkpoints."""
        out: dict[str, Any] = {"experiment": self.NAME, "steps": self.steps, "lr": self.lr,
                               "batch_size": self.batch_size, "standardize": self.standardize}
        if method.startswith("dwp"):
            out["priors"] = self.prior_specs()
        if method == "filters":
            out["sources"] = [str(p) for p in self.sources]
        return out

    def legacy_config(self) -> str:
        """The ``config`` column the old script wrote (its resume key, with method, k and seed)."""
        return _legacy_config(self.row_settings(method="xavier"))


def _legacy_config(settings: dict[str, Any]) -> str:
    feats = "standardised" if settings["standardize"] else "raw"
    return f"steps {settings['steps']} batch {settings['batch_size']} lr {settings['lr']} {feats} features"


def legacy_match(row: dict[str, str], settings: dict[str, Any]) -> bool:
    """Rows written before config hashing: the old key, the classifier settings in the ``config`` column (the old
    script did not record the priors or the filters' sources)."""
    return row.get("config") == _legacy_config(settings)


def result_file(cfg: Fig3aConfig) -> ResultFile:
    return ResultFile(cfg.out_dir / "fig3a.csv", FIELDS, KEY, legacy=legacy_match)


def widths_for(k: Fraction) -> tuple[int, int]:
    return max(1, round(BASE_WIDTHS[0] * k)), max(1, round(BASE_WIDTHS[1] * k))


@torch.no_grad()
def features(body: nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    body.eval()
    return torch.cat([body(x[i : i + batch]) for i in range(0, len(x), batch)])


def train_classifier(f_tr: torch.Tensor, y_tr: torch.Tensor, f_te: torch.Tensor, y_te: torch.Tensor, *,
                     steps: int, lr: float, batch: int, seed: int, standardize: bool) -> tuple[float, float]:
    """Train Linear(d → 10) on frozen features (Adam, linear decay to 0); return (test, train) accuracy.

    ``standardize`` z-scores every feature with training statistics: the same linear classifier
    reparameterised (w' = w/σ, b' = b - w·μ/σ), which makes Adam's progress independent of the
    overall feature scale (that differs by an order of magnitude between the initialisations).
    """
    if standardize:
        mu, sd = f_tr.mean(0), f_tr.std(0).clamp_min(1e-8)
        f_tr, f_te = (f_tr - mu) / sd, (f_te - mu) / sd
    g = torch.Generator().manual_seed(seed)
    clf = nn.Linear(f_tr.shape[1], 10)
    nn.init.xavier_uniform_(clf.weight, generator=g)
    nn.init.zeros_(clf.bias)
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    perm, pos = torch.randperm(len(f_tr), generator=g), 0
    for _ in range(steps):
        if pos + batch > len(perm):
            perm, pos = torch.randperm(len(f_tr), generator=g), 0
        idx = perm[pos : pos + batch]
        pos += batch
        loss = nn.functional.cross_entropy(clf(f_tr[idx]), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        return ((clf(f_te).argmax(1) == y_te).float().mean().item(),
                (clf(f_tr).argmax(1) == y_tr).float().mean().item())


def run(cfg: Fig3aConfig, results: ResultFile, priors: dict | None, bank: X.FilterBank | None,
        report_only: bool = False) -> None:
    todo = [(s, k, m) for s in cfg.seeds for k in cfg.widths for m in cfg.methods
            if not results.has(cfg.row_settings(method=m), method=m, k=k, seed=s)]
    if report_only:
        todo = []
    print(f"fig3a: {len(todo)} run(s) to do ({cfg.legacy_config()}), {len(results.rows)} row(s) already in "
          f"{results.path}", flush=True)
    if not todo:
        return
    x_tr, y_tr, x_te, y_te = X.mnist_protocol()
    from dwp_hub.model.nets import NetConfig, build_net

    for seed, k, method in todo:
        h0, h1 = widths_for(k)
        net = build_net(NetConfig("fconv", (h0, h1)))
        X.init_net_(net, method, torch.Generator().manual_seed(seed), priors, bank)
        for p in net.parameters():
            p.requires_grad_(False)
        body = net[:-1]  # everything but the classifier
        t = Timer()
        f_tr, f_te = features(body, x_tr), features(body, x_te)
        extract = t()
        t = Timer()
        test_acc, train_acc = train_classifier(f_tr, y_tr, f_te, y_te, steps=cfg.steps, lr=cfg.lr,
                                               batch=cfg.batch_size, seed=seed, standardize=cfg.standardize)
        results.add([{"method": method, "k": k, "h0": h0, "h1": h1, "seed": seed, "config": cfg.legacy_config(),
                      "test_accuracy": f"{test_acc:.4f}", "train_accuracy": f"{train_acc:.4f}",
                      "feature_dim": f_tr.shape[1], "extract_seconds": f"{extract:.2f}",
                      "train_seconds": f"{t():.2f}"}], cfg.row_settings(method=method))
        print(f"  k={k!s:>4} ({h0:>2},{h1:>3}) seed {seed} {method:<7} test acc {test_acc:.4f} "
              f"(train {train_acc:.4f}; features {extract:.1f}s, classifier {t():.1f}s)", flush=True)


def summarize(cfg: Fig3aConfig, results: ResultFile, command: str, priors_note: str, bank_note: str,
              scale_note: str) -> None:
    stats: dict[tuple[str, Fraction], tuple[float, float, int]] = {}
    for m in cfg.methods:
        for k in cfg.widths:
            accs = [float(r["test_accuracy"]) for r in results.find(cfg.row_settings(method=m), method=m, k=k)
                    if int(r["seed"]) in cfg.seeds]
            if accs:
                stats[(m, k)] = (*mean_std(accs), len(accs))
    _plot(stats, list(cfg.widths), list(cfg.methods), cfg.out_dir / "fig3a.png")
    lines = [
        "# Fig. 3a: random feature extraction on MNIST",
        "",
        "Conv layers of the paper's MNIST net (widths (32, 128)·k) initialised, then frozen; only the linear",
        "classifier is trained. Test accuracy, mean ± standard deviation over seeds, beside the paper's",
        "numbers (read off its Fig. 3a; the paper averages 10 runs on the full MNIST).",
        "",
        f"Command: `{command}`",
        "",
        f"- Data: {X.PROTOCOL}. The paper trains on the 60k MNIST training set and tests on its 10k test set.",
        f"- Priors: {priors_note}.",
        f"- Learned filters: {bank_note}; drawn uniformly with replacement for every kernel slice.",
        ("- Kernel scale, median L2 norm of prior samples (decoder means of z ~ N(0, I)) against the learned "
         f"kernels: {scale_note}."),
        "- Xavier: Xavier-uniform. Every arm: biases zero; the classifier starts from Xavier-uniform.",
        (f"- Classifier: Linear(h1·9 → 10) on precomputed features, Adam lr {cfg.lr} with linear decay to 0, "
         f"batch {cfg.batch_size}, {cfg.steps} steps"
         + (", features standardised with training statistics." if cfg.standardize else ", raw features.")),
        (f"- Seeds: {', '.join(map(str, cfg.seeds))} (each seed: the conv init, the classifier "
         f"init and the batch order). {machine_note()}. Config {cfg.sha256()}."),
        "",
        "| k | widths | " + " | ".join(f"{_label(m)} (ours) | {_label(m)} (paper)" for m in cfg.methods) + " |",
        "|---|---|" + "---|---|" * len(cfg.methods),
    ]
    for k in cfg.widths:
        h0, h1 = widths_for(k)
        cells = []
        for m in cfg.methods:
            s = stats.get((m, k))
            cells.append(f"{s[0]:.4f} ± {s[1]:.4f} (n={s[2]})" if s else "-")
            cells.append(f"{PAPER[m][k]:.3f}" if k in PAPER.get(m, {}) else "-")
        lines.append(f"| {k} | {h0}, {h1} | " + " | ".join(cells) + " |")
    if "dwp" in cfg.methods and "xavier" in cfg.methods:
        lines += ["", ("Target: the deep weight prior above Xavier by more than one seed standard deviation "
                  "(the larger of the two arms' standard deviations) at every k ≤ 1/4."), "",
                  "| k | dwp − xavier | max std | met |", "|---|---|---|---|"]
        met_all = True
        for k in cfg.widths:
            if (("dwp", k) not in stats) or (("xavier", k) not in stats):
                continue
            d, x = stats[("dwp", k)], stats[("xavier", k)]
            diff, sd = d[0] - x[0], max(d[1], x[1])
            met = diff > sd
            if k <= Fraction(1, 4):
                met_all &= met
            lines.append(f"| {k} | {diff:+.4f} | {sd:.4f} | {'yes' if met else 'no'}"
                         f"{'' if k <= Fraction(1, 4) else ' (not required)'} |")
        lines += ["", f"Target {'met' if met_all else 'NOT met'} for every k ≤ 1/4."]
    lines += notes_section(cfg.notes, cfg.out_dir, "fig3a")
    lines += ["", "![Fig. 3a](fig3a.png)", "", "Per-run rows: [fig3a.csv](fig3a.csv)."]
    (cfg.out_dir / "fig3a.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _label(method: str) -> str:
    return X.LABELS.get(method, method)


def _plot(stats: dict, ks: list[Fraction], methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        pts = [(float(k), *stats[(m, k)][:2]) for k in ks if (m, k) in stats]
        if pts:
            xs, ys, es = zip(*pts, strict=True)
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, color=X.COLORS.get(m), label=f"{_label(m)} (ours)")
        if m in PAPER:
            pk = sorted(PAPER[m])
            ax.plot([float(k) for k in pk], [PAPER[m][k] for k in pk], "--", marker="x", alpha=0.6,
                    color=X.COLORS.get(m), label=f"{_label(m)} (paper)")
    ax.set_xscale("log", base=2)
    ax.set_xticks([float(k) for k in ks], [str(k) for k in ks])
    ax.set_xlabel("width scale k (conv widths 32k, 128k)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Random feature extraction, MNIST (frozen convs)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    setup = X.setup_run(Fig3aConfig, "fig3a", argv, __doc__.split("\n\n")[0])
    cfg = setup.cfg
    assert isinstance(cfg, Fig3aConfig)
    results = result_file(cfg)
    run(cfg, results, setup.priors, setup.bank, report_only=setup.ns.report_only)
    summarize(cfg, results, setup.command, *setup.described())
    print(f"fig3a done in {setup.timer():.0f}s ({format_seeds(cfg.seeds)}); wrote {cfg.out_dir}/fig3a.csv, fig3a.png, "
          "fig3a.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
