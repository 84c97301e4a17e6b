"""Reproduce the paper's Fig. 2a: MNIST test accuracy of VI by prior and training-set size.

Protocol: the MNIST-10k protocol (:func:`dwp_hub.data.mnist10k_protocol`: N class-stratified
training images from MNIST-10k images 0-4999 drawn by the data-split seed, test on images
5000-9999). Net: the paper's fconv 32/128 with Bayesian conv layers (:func:`dwp_hub.inference.paper_net`).
Priors: deep weight prior (notmnist-7x7 + notmnist-5x5), log-uniform, standard normal, and the
deterministic net with L2. Recipe: :class:`dwp_hub.inference.VIRecipe` (Adam 1e-3 linear decay,
10,000 epochs, batch 256, KL weight 1); accuracy of a 10-pass MC ensemble.

Every finished run is appended to the CSV at once; a restarted command skips rows already there
(same size, prior, seed, epochs and batch; for the deep weight prior also the same ``--dwp`` spec, so
runs of several specs share one CSV and show as one arm each in the report) and resumes unfinished
runs from their checkpoints (``--work-dir``). The table, plot and notes are rewritten from the CSV at the
end (or alone with ``--report-only``).

Usage::

    DWP_HUB_DATA=../shared/data python tools/fig2a.py --seeds 0-4 --workers 2              # the paper's budget
    DWP_HUB_DATA=../shared/data python tools/fig2a.py --steps 400 --batch 50 --workers 2 --threads 1
                                                      # a fixed step budget (what a 2-core machine affords)
    python tools/fig2a.py --report-only            # table + plot from the CSV
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import math
import multiprocessing as mp
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import _runlog as runlog  # noqa: E402
SIZES = (50, 100, 200, 500, 1000)
#: Arms: (paper_net prior, mean initialisation). "sn-dwp-init" and "dwp-xavier-init" separate the deep
#: weight prior's initialisation from the prior itself; "sparse-log-uniform" is the additive-family
#: log-uniform (Molchanov et al. 2017), which rows written before the paper's variational-dropout arm
#: existed used under the name "log-uniform" (relabelled in the committed CSVs).
ARMS = {"dwp": ("dwp", "dwp"), "log-uniform": ("log-uniform", "xavier"),
        "standard-normal": ("standard-normal", "xavier"), "deterministic": ("deterministic", "xavier"),
        "sn-dwp-init": ("standard-normal", "dwp"), "dwp-xavier-init": ("dwp", "xavier"),
        "sparse-log-uniform": ("sparse-log-uniform", "xavier")}
PRIORS = tuple(ARMS)
DEFAULT_PRIORS = ("dwp", "log-uniform", "standard-normal", "deterministic", "sn-dwp-init", "dwp-xavier-init")
LABELS = {"dwp": "deep weight prior", "log-uniform": "log-uniform (variational dropout)",
          "standard-normal": "standard normal", "deterministic": "deterministic net + L2",
          "sn-dwp-init": "standard normal, dwp-initialised means", "dwp-xavier-init": "deep weight prior, Xavier means",
          "sparse-log-uniform": "sparse log-uniform (additive family)"}


def uses_dwp(prior: str) -> bool:
    """Whether an arm needs the deep weight priors (as prior or for its initialisation)."""
    return "dwp" in ARMS[prior]
#: Fig. 2a of the paper (mean of 10 data-split seeds, read off the figure; recipe file).
PAPER = {
    "dwp": (0.800, 0.867, 0.915, 0.945, 0.961),
    "log-uniform": (0.766, 0.839, 0.894, 0.938, 0.958),
    "standard-normal": (0.717, 0.816, 0.890, 0.938, 0.959),
    "deterministic": (0.751, 0.827, 0.879, 0.926, 0.954),
}
FIELDS = ("size", "prior", "seed", "epochs", "batch", "acc_ensemble", "acc_mean", "nll_ensemble", "steps", "seconds",
          "ms_per_step", "bound", "kernels_per_step", "dwp_priors", "protocol", "torch", "threads", "finished",
          "gap_per_kernel", "dwp_hub", "commit")


def _ints(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _dwp_table(text: str) -> dict[int, str]:
    table = {}
    for item in text.split(","):
        size, _, spec = item.partition("=")
        table[int(size)] = spec.strip()
    return table


def _pin(spec: str) -> str:
    """``--dwp`` with every prior pinned to the version it resolves to now (newest when unversioned),
    so that CSV rows say exactly which priors a run used."""
    from dwp_hub.registry import resolve

    table = _dwp_table(spec)
    return ",".join(f"{k}={resolve(ref).spec}" for k, ref in sorted(table.items(), reverse=True))


def _row_spec(spec: str) -> str:
    """A CSV row's ``dwp_priors`` with unversioned names read as 1.0.0: rows written before this tool
    pinned versions were all made while 1.0.0 was the only version ("" : rows older than the column)."""
    if spec == "random-vae":
        return spec
    if not spec:
        spec = "7=notmnist-7x7,5=notmnist-5x5"  # rows older than the column: the defaults of that time
    parts = []
    for item in spec.split(","):
        size, _, ref = item.partition("=")
        ref = ref.strip()
        parts.append(f"{size.strip()}={ref if '@' in ref else ref + '@1.0.0'}")
    return ",".join(parts)


def _dwp_spec(job: dict[str, Any]) -> str:
    """What run_one writes as ``dwp_priors`` for a job ("" for the other priors)."""
    if not uses_dwp(job["prior"]):
        return ""
    return "random-vae" if job["random_priors"] else job["dwp"]


def _run_key(row: dict[str, Any]) -> tuple[int, str, int, int, int, str]:
    """(size, prior, seed, epochs, batch, dwp spec) of a CSV row: a run is done when its key is in the CSV."""
    return (int(row["size"]), row["prior"], int(row["seed"]), int(row["epochs"]), int(row.get("batch") or 256),
            _arm(row)[1])


def _old_7x7(spec: str) -> bool:
    """Whether a dwp spec uses the 1.0.0 notmnist-7x7 prior."""
    for item in _row_spec(spec).split(","):
        size, _, ref = item.partition("=")
        if size.strip() == "7" and ref.strip() == "notmnist-7x7@1.0.0":
            return True
    return False


def _random_priors() -> dict[int, Any]:
    import torch

    from dwp_hub.card import ArchConfig
    from dwp_hub.model.vae import KernelVAE

    torch.manual_seed(0)
    return {7: KernelVAE(ArchConfig("conv7", 7, 2, 32)), 5: KernelVAE(ArchConfig("conv5", 5, 4, 64))}


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (size, prior, seed); returns the CSV row."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import DEFAULT_KERNELS_PER_STEP, VIRecipe, fit_deterministic, fit_vi, paper_net

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    split = mnist10k_protocol(job["size"], job["seed"])
    priors: dict[int, Any] = _random_priors() if job["random_priors"] else _dwp_table(job["dwp"])
    prior, init = ARMS[job["prior"]]
    model = paper_net(prior, dwp_priors=priors, seed=job["seed"], bound=job["bound"],
                      kernels_per_step=job["kernels_per_step"], init=init)
    recipe = VIRecipe(epochs=job["epochs"], batch_size=job["batch"], seed=job["seed"], eval_mc=job["eval_mc"],
                      checkpoint_every=job["checkpoint_every"])
    fit = fit_deterministic if job["prior"] == "deterministic" else fit_vi
    spec = _dwp_spec(job)
    tag = f"-{hashlib.sha256(spec.encode()).hexdigest()[:8]}" if uses_dwp(job["prior"]) else ""
    name = f"n{job['size']}-{job['prior']}{tag}-s{job['seed']}-e{job['epochs']}-b{job['batch']}.safetensors"
    ck = Path(job["work_dir"]) / name
    result = fit(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
                 checkpoint=ck, progress=False, metadata={"protocol": split.protocol})
    m = result.metrics
    gap = ""
    if prior == "dwp" and job.get("gap_k"):  # Appendix F: the auxiliary bound's gap per layer, end of run
        from dwp_hub.inference import bound_gap

        est = bound_gap(model, k=job["gap_k"], generator=torch.Generator().manual_seed(job["seed"]))
        gap = ";".join(f"{name}={g.gap_per_kernel:.3f}" for name, g in est.items())
    from dwp_hub import __version__

    return {
        "size": job["size"], "prior": job["prior"], "seed": job["seed"], "epochs": job["epochs"], "batch": job["batch"],
        "acc_ensemble": round(m["acc_ensemble"], 4), "acc_mean": round(m["acc_mean"], 4),
        "nll_ensemble": round(m["nll_ensemble"], 4), "steps": result.steps, "seconds": round(result.seconds, 1),
        "ms_per_step": round(result.ms_per_step, 2),
        "bound": job["bound"] if prior == "dwp" else "",
        "kernels_per_step": (job["kernels_per_step"] or DEFAULT_KERNELS_PER_STEP) if prior == "dwp" else "",
        "dwp_priors": spec,
        "protocol": split.protocol, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "_checkpoint": str(ck),
        "gap_per_kernel": gap, "dwp_hub": __version__, "commit": job.get("commit", ""),
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    return runlog.read_rows(path)


def append_row(path: Path, row: dict[str, Any]) -> None:
    runlog.append_row(path, row, FIELDS)


Arm = tuple[str, str]  # (prior, dwp spec; "" for the other priors)


def _arm(r: dict[str, str]) -> Arm:
    return (r["prior"], _row_spec(r.get("dwp_priors") or "") if uses_dwp(r["prior"]) else "")


def _stats(rows: list[dict[str, str]], sizes: list[int],
           arms: list[Arm]) -> dict[tuple[Arm, int], tuple[float, float, int]]:
    out = {}
    for a in arms:
        for n in sizes:
            accs = [float(r["acc_ensemble"]) for r in rows if _arm(r) == a and int(r["size"]) == n]
            if accs:
                out[(a, n)] = (statistics.mean(accs), statistics.stdev(accs) if len(accs) > 1 else 0.0, len(accs))
    return out


def _paired_diffs(rows: list[dict[str, str]], a: Arm, b: Arm, n: int) -> list[float]:
    """acc(a) − acc(b) per data-split seed that both arms ran at size ``n``."""
    pa = {r["seed"]: float(r["acc_ensemble"]) for r in rows if _arm(r) == a and int(r["size"]) == n}
    pb = {r["seed"]: float(r["acc_ensemble"]) for r in rows if _arm(r) == b and int(r["size"]) == n}
    return [pa[s] - pb[s] for s in sorted(set(pa) & set(pb))]


def budget_table(rows: list[dict[str, str]], other: list[dict[str, str]], other_name: str,
                 sizes: tuple[int, ...] = (50, 100)) -> list[str]:
    """Markdown lines: each arm at this CSV's budget beside ``other``'s budget and the paper, at ``sizes``
    (mean ± std over seeds, number of seeds in brackets)."""
    def budget(rs: list[dict[str, str]], n: int) -> str:
        b = sorted({(int(r["epochs"]), int(r.get("batch") or 256), int(r["steps"])) for r in rs if int(r["size"]) == n})
        return "; ".join(f"{e} epochs = {st} steps" for e, _, st in b) or "-"

    def cell(rs: list[dict[str, str]], arm: Arm, n: int) -> str:
        accs = [float(r["acc_ensemble"]) for r in rs if _arm(r) == arm and int(r["size"]) == n]
        if not accs:
            return "-"
        return f"{statistics.mean(accs):.3f} ± {statistics.stdev(accs) if len(accs) > 1 else 0.0:.3f} ({len(accs)})"

    arms = list(dict.fromkeys(_arm(r) for r in rows + other))
    arms.sort(key=lambda a: PRIORS.index(a[0]))
    head = ["arm"]
    for n in sizes:
        head += [f"N={n}, this budget", f"N={n}, {other_name}", f"N={n}, paper"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for arm in arms:
        cells = [LABELS[arm[0]] + (f" [{arm[1]}]" if arm[1] else "")]
        for n in sizes:
            paper = dict(zip(SIZES, PAPER[arm[0]])).get(n) if arm[0] in PAPER else None
            cells += [cell(rows, arm, n), cell(other, arm, n), f"{paper:.3f}" if paper is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Budgets: " + "; ".join(f"N={n}: this CSV {budget(rows, n)}, {other_name} {budget(other, n)}"
                                      for n in sizes) + "."]
    return lines


def write_report(rows: list[dict[str, str]], out_dir: Path, command: str, stem: str = "fig2a",
                 rewritten_by: str = "", compare: tuple[str, list[dict[str, str]]] | None = None) -> tuple[Path, Path]:
    """Markdown table (ours beside the paper's) and plot from the CSV rows; with ``compare``
    (a name and another CSV's rows) also a table of both budgets side by side."""
    sizes = sorted({int(r["size"]) for r in rows}) or list(SIZES)
    priors = [p for p in PRIORS if any(r["prior"] == p for r in rows)]
    dwp_specs = list(dict.fromkeys(_arm(r)[1] for r in rows if uses_dwp(r["prior"])))  # first appearance
    multi = len(dwp_specs) > 1
    arms_of = {p: [(p, sp) for sp in dwp_specs if any(_arm(r) == (p, sp) for r in rows)] if uses_dwp(p)
               else [(p, "")] for p in priors}
    arms = [a for p in priors for a in arms_of[p]]
    label = {a: f"{LABELS[a[0]]} [{a[1] or '?'}]" if multi and uses_dwp(a[0]) else LABELS[a[0]] for a in arms}
    st = _stats(rows, sizes, arms)
    epochs = sorted({int(r["epochs"]) for r in rows})
    per_size = {n: sorted({(int(r["epochs"]), int(r.get("batch") or 256), int(r["steps"])) for r in rows
                           if int(r["size"]) == n}) for n in sizes}
    budget = "; ".join(f"N={n}: " + ", ".join(f"{e} epochs x batch {min(b, n)} = {st} steps" for e, b, st in v)
                       for n, v in per_size.items() if v)
    dwp_src = [sp for sp in dwp_specs if sp]
    lines = [
        "# Fig. 2a reproduction: MNIST test accuracy of variational inference",
        "",
        ("Commands (each added rows to the CSV): `" if "`; `" in command else "Command: `") + command + "`"
        + (f" (report rewritten by `{rewritten_by}`)" if rewritten_by else ""),
        "",
        f"Training per run: {budget} (paper: 10,000 epochs, the whole set per step for N <= 256). Protocol: MNIST-10k (N stratified training images "
        "from MNIST-10k images 0-4999 by the data-split seed, test on images 5000-9999); the paper used the "
        "60k training set and 10k test set. Accuracy: MC ensemble of 10 stochastic passes. "
        f"Deep weight prior: {', '.join(dwp_src) or '-'}.",
        "",
        "Ours: mean ± std over data-split seeds (number of seeds in brackets); paper: mean of 10 seeds.",
        "",
        "| prior | " + " | ".join(str(n) for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for p in priors:
        for a in arms_of[p]:
            cells = []
            for n in sizes:
                if (a, n) in st:
                    mu, sd, k = st[(a, n)]
                    cells.append(f"{mu:.3f} ± {sd:.3f} ({k})")
                else:
                    cells.append("-")
            lines.append(f"| {label[a]} (ours) | " + " | ".join(cells) + " |")
        if p in PAPER:
            paper = dict(zip(SIZES, PAPER[p]))
            lines.append(f"| {LABELS[p]} (paper) | " + " | ".join(f"{paper[n]:.3f}" if n in paper else "-"
                                                                for n in sizes) + " |")
    lines += ["", "## Targets", ""]
    paper = dict(zip(SIZES, PAPER["dwp"]))
    for a in arms_of.get("dwp", []):
        for n in sizes:
            if (a, n) in st and n in paper:
                mu = st[(a, n)][0]
                lines.append(f"- N={n}: {label[a]} {mu:.3f} vs paper {paper[n]:.3f}: "
                             f"{'met' if mu >= paper[n] else 'MISSED'}")
        for n in (50, 100):
            for other in [b for b in arms if b[0] != "dwp"]:
                diffs = _paired_diffs(rows, a, other, n)
                if len(diffs) >= 2:
                    mu, sd = statistics.mean(diffs), statistics.stdev(diffs)
                    lines.append(f"- N={n}: {label[a]} − {label[other]} = {mu:+.3f} (paired over {len(diffs)} seeds, "
                                 f"std {sd:.3f}): {'met' if mu > sd else 'MISSED'}")
    for p in ("log-uniform", "standard-normal", "deterministic"):
        for n in (50, 100):
            if ((p, ""), n) in st and p in PAPER:
                mu, ref = st[((p, ""), n)][0], dict(zip(SIZES, PAPER[p]))[n]
                lines.append(f"- N={n}: {label[(p, '')]} {mu:.3f} vs paper {ref:.3f}: "
                             f"{'within 0.03' if abs(mu - ref) <= 0.03 else 'NOT within 0.03'}")
    gaps = [(int(r["size"]), r["seed"], r["gap_per_kernel"]) for r in rows if r.get("gap_per_kernel")]
    if gaps:
        lines += ["", "## Appendix F: gap of the auxiliary bound at the end of each run (nats per kernel, per layer)", ""]
        lines += [f"- N={n}, seed {sd}: {g}" for n, sd, g in sorted(gaps)]
    max_steps = max(int(r["steps"]) for r in rows) if rows else 0
    diversity_link = os.path.relpath(REPO / "docs" / "results" / "prior_diversity.md", out_dir.resolve())
    notes = []
    if rows and min(epochs) < 10_000:
        notes.append(
            f"- Truncated budget: at most {max_steps} optimiser steps per run against the paper's 10,000 epochs. "
            f"With Adam at lr 1e-3 a parameter moves by at most about {max_steps * 1e-3:.1f} in {max_steps} steps "
            "(less under the linear decay), so every log σ² is still at most "
            f"{-10 + max_steps * 1e-3:.1f} (from its initial −10): the posteriors' variances stay tiny and the "
            "KL term acts mostly on the means. This is not yet the regime in which the paper compares priors.")
    if (("sparse-log-uniform", ""), sizes[0]) in st and st[(("sparse-log-uniform", ""), sizes[0])][0] < 0.5:
        notes.append(
            "- Sparse log-uniform (the additive family; rows made before the paper's variational-dropout arm "
            "existed, when it was called log-uniform): while log σ² ≈ −10, the Molchanov KL is large for every weight and falls as "
            "log α = log σ² − log θ² rises, i.e. as the mean θ shrinks; its gradient outweighs the data term "
            "(N · mean CE) and pulls the conv means to 0 before the variances can grow, so truncated runs end "
            "near chance accuracy. Longer runs let log σ² grow and the data term recover.")
    sn = st.get((("standard-normal", ""), sizes[0]))
    below = [a for a in arms_of.get("dwp", []) if _old_7x7(a[1]) and sn and (a, sizes[0]) in st
             and st[(a, sizes[0])][0] < sn[0]]
    if below:
        which = "Deep weight prior" + (" " + ", ".join(f"[{a[1] or '?'}]" for a in below) if multi else "")
        notes.append(
            f"- {which} below the standard normal: its conv means start at decoder means of the 7x7 and "
            "5x5 priors, and the shipped 7x7 prior's decoder means are nearly collinear (many copies of one smooth "
            f"pattern; see [prior_diversity.md]({diversity_link})): the first layer starts with little feature "
            "diversity, and the KL term keeps pulling its kernels towards that pattern.")
    if notes:
        lines += ["", "## Reading these numbers", "", *notes]
    if compare is not None:
        lines += ["", f"## Both budgets: this table beside {compare[0]}", "", *budget_table(rows, compare[1], compare[0])]
    lines += ["", f"Runs: {len(rows)}; total training time {sum(float(r['seconds']) for r in rows) / 3600:.2f} h "
              f"(median {statistics.median(float(r['ms_per_step']) for r in rows):.1f} ms/step)." if rows else ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2 + 0.25 * len(arms) if multi else 4.2))
    colors = {"dwp": "C3", "log-uniform": "C0", "standard-normal": "C2", "deterministic": "C7", "sn-dwp-init": "C1",
              "dwp-xavier-init": "C4", "sparse-log-uniform": "C9"}
    dwp_colors = ("C3", "C1", "C4", "C5", "C6", "C8", "C9")
    for p in priors:
        for i, a in enumerate(arms_of[p]):
            xs = [n for n in sizes if (a, n) in st]
            mus = [st[(a, n)][0] for n in xs]
            sds = [st[(a, n)][1] for n in xs]
            color = dwp_colors[i % len(dwp_colors)] if p == "dwp" and multi else colors[p]
            ax.errorbar(xs, mus, yerr=sds, marker="o", capsize=3, color=color, label=f"{label[a]} (ours)")
        if p in PAPER:
            ax.plot(SIZES, PAPER[p], ls="--", marker="x", color=colors[p], alpha=0.6, label=f"{LABELS[p]} (paper)")
    ax.set_xscale("log")
    ax.set_xticks(list(SIZES))
    ax.set_xticklabels([str(s) for s in SIZES])
    ax.set_xlabel("training examples")
    ax.set_ylabel("test accuracy (MC ensemble of 10)")
    ax.set_title("MNIST, VI with different priors" + (f" ({epochs[0]} epochs)" if len(epochs) == 1 else
                                                     f" ({max(int(r['steps']) for r in rows)} steps per run)"))
    ax.grid(alpha=0.3)
    if multi:  # long spec labels: one column below the axes
        ax.legend(fontsize=7, ncol=1, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    else:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    png = out_dir / f"{stem}.png"
    fig.savefig(png, dpi=130)
    plt.close(fig)
    return md, png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Reproduce the paper's Fig. 2a on the MNIST-10k protocol.")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--priors", default=",".join(DEFAULT_PRIORS), help=f"arms, a subset of {','.join(PRIORS)}")
    ap.add_argument("--gap-k", type=int, default=0,
                    help="at the end of each deep-weight-prior run, estimate the bound's gap (Appendix F) with K "
                         "importance samples (0: skip)")
    ap.add_argument("--seeds", default="0-4", help="data-split seeds, e.g. 0-4 or 0,3")
    ap.add_argument("--epochs", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=None,
                    help="a fixed step budget per run instead of --epochs (epochs = steps / batches per epoch, "
                         "rounded); for machines where 10,000 epochs is out of reach")
    ap.add_argument("--batch", type=int, default=256, help="batch size (the whole set when N <= batch)")
    ap.add_argument("--workers", type=int, default=1, help="parallel runs (processes)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: cores // workers)")
    from dwp_hub.registry.defaults import paper_priors_spec

    ap.add_argument("--dwp", default=paper_priors_spec(), help="deep weight prior per kernel size; unversioned names are pinned to the newest version "
                    "before the run (rows record the pinned spec)")
    ap.add_argument("--random-priors", action="store_true",
                    help="randomly initialised VAEs instead of hub priors (smoke tests only; marked in the CSV)")
    ap.add_argument("--bound", choices=("fast", "full"), default="fast")
    ap.add_argument("--kernels-per-step", type=int, default=None)
    ap.add_argument("--eval-mc", type=int, default=10)
    ap.add_argument("--checkpoint-every", type=int, default=1000, help="steps between run checkpoints")
    ap.add_argument("--out-dir", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--csv", type=Path, default=None, help="default OUT_DIR/fig2a.csv")
    ap.add_argument("--work-dir", type=Path, default=REPO / "runs" / "fig2a", help="per-run checkpoints")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep finished runs' checkpoints")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--compare", type=Path, default=None,
                    help="another fig2a CSV (another budget): the report adds both budgets side by side")
    args = ap.parse_args(argv)

    csv_path = args.csv or args.out_dir / "fig2a.csv"
    command = "python tools/fig2a.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    log = csv_path.with_suffix(".commands.txt")  # every command that added rows to this CSV, in order
    if args.report_only:
        old_md = args.out_dir / "fig2a.md"  # keep the command(s) that produced the rows
        rewritten_by = ""
        if runlog.commands(log):
            rewritten_by, command = command, "`; `".join(runlog.commands(log))
        elif old_md.exists():
            for line in old_md.read_text().splitlines():
                if line.startswith("Command: `") and "--report-only" not in line:
                    rewritten_by, command = command, line[len("Command: `"):].split("`")[0]
                    break
        rows = read_rows(csv_path)
        if not rows:
            raise SystemExit(f"No rows in {csv_path}.")
        compare = None
        if args.compare is not None:
            compare = (os.path.relpath(args.compare, args.out_dir), read_rows(args.compare))
        print("\n".join(map(str, write_report(rows, args.out_dir, command, rewritten_by=rewritten_by,
                                               compare=compare))))
        return 0
    priors = [p.strip() for p in args.priors.split(",") if p.strip()]
    bad = set(priors) - set(PRIORS)
    if bad:
        raise SystemExit(f"Unknown priors {sorted(bad)}; choose from {PRIORS}.")
    sizes, seeds = _ints(args.sizes), _ints(args.seeds)
    done = {_run_key(r) for r in read_rows(csv_path)}
    dwp = _pin(args.dwp) if any(uses_dwp(p) for p in priors) and not args.random_priors else args.dwp
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = ""

    def epochs_for(n: int) -> int:
        if args.steps is None:
            return args.epochs
        return max(1, round(args.steps / math.ceil(n / args.batch)))

    cores = os.cpu_count() or 1
    threads = args.threads or max(1, cores // max(1, args.workers))
    jobs = [
        {"size": n, "prior": p, "seed": s, "epochs": epochs_for(n), "batch": args.batch, "threads": threads, "dwp": dwp,
         "random_priors": args.random_priors, "bound": args.bound, "kernels_per_step": args.kernels_per_step,
         "eval_mc": args.eval_mc, "checkpoint_every": args.checkpoint_every, "work_dir": str(args.work_dir),
         "gap_k": args.gap_k, "commit": commit}
        for n in sizes for s in seeds for p in priors
    ]
    jobs = [j for j in jobs if _run_key({**j, "dwp_priors": _dwp_spec(j)}) not in done]
    print(f"{len(jobs)} run(s) to do ({len(done)} already in {csv_path}); {args.workers} worker(s) x {threads} thread(s)",
          flush=True)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if jobs:
        runlog.record(log, command)
    t0 = time.perf_counter()

    def report(row: dict[str, Any]) -> None:
        append_row(csv_path, row)
        if not args.keep_checkpoints:  # the CSV row is the result; checkpoints only serve unfinished runs
            Path(row["_checkpoint"]).unlink(missing_ok=True)
        print(f"  N={row['size']:<5} {row['prior']:<16} seed {row['seed']}: acc {row['acc_ensemble']:.4f} "
              f"(mean weights {row['acc_mean']:.4f}), {row['seconds']:.0f} s, {row['ms_per_step']:.1f} ms/step",
              flush=True)

    if args.workers <= 1:
        for job in jobs:
            report(run_one(job))
    else:
        with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            for fut in cf.as_completed([pool.submit(run_one, j) for j in jobs]):
                report(fut.result())
    rows = read_rows(csv_path)
    if rows:
        command = "`; `".join(runlog.commands(log)) or command
        md, png = write_report(rows, args.out_dir, command)
        print(f"{len(jobs)} run(s) in {time.perf_counter() - t0:.0f} s; wrote {csv_path}, {md}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
