"""Accuracy of bf16 VI training against fp32, paired per seed (issue 12: bf16 is validated before it is offered).

Each run trains the paper's 32/128 MNIST net (:func:`dwp_hub.paper.paper_net`) by VI with
:func:`dwp_hub.inference.fit_vi` twice, once with ``VIRecipe(precision="fp32")`` and once with
``VIRecipe(precision="bf16")`` (the forward pass under bfloat16 autocast; parameters, KL terms, the optimiser and
evaluation fp32), with everything else equal: the same data split, initialisation and weight-noise seed. Arms: the
standard normal and the deep weight prior (the shipped defaults, :data:`dwp_hub.paper.PAPER_DWP`, pinned to their
versions before the run). Protocol: the VALIDATION protocol of the MNIST-10k file (training subsets from images
0-2499, accuracy of a 10-pass MC ensemble on images 2500-4999), so the check never touches the test images.

The report (``OUT_DIR/bf16_check.md``) gives, per size and arm, the accuracy of both precisions, the paired
difference bf16 − fp32 (mean ± std over seeds), the training steps' ms/step of both, and whether the mean loss
of accuracy stays within ``tolerance``. Rows go to ``OUT_DIR/bf16_check.csv`` as each run finishes, keyed by
(size, prior, seed, precision) and the hash of the settings; a rerun skips rows already there. The report reads
every row of the CSV: give another budget its own ``--out-dir`` (or ``--csv``).

Refused where bfloat16 is not native (:func:`dwp_hub.inference.vi.bf16_supported`: AVX512-BF16 or AMX).

Usage::

    DWP_HUB_DATA=../shared/data nice -n 10 python tools/bf16_check.py --config tools/configs/bf16-check.yaml
    python tools/bf16_check.py --report-only          # the report from the CSV
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/bf16_check.py): register the tools package
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dwp_hub.paper import PAPER_DWP
from tools._experiment import (
    GRID,
    RANDOM_SPEC,
    REPO,
    RUN,
    ExperimentConfig,
    ResultFile,
    command_line,
    format_kernel_specs,
    mean_std,
    notes_section,
    parse_ints,
    parse_kernel_specs,
    parse_seeds,
    pin_specs,
    random_priors,
    run_jobs,
    setting,
)

PRIORS = ("standard-normal", "dwp")
PRECISIONS = ("fp32", "bf16")
LABELS = {"standard-normal": "standard normal", "dwp": "deep weight prior"}
FIELDS = ("size", "prior", "seed", "precision", "steps", "epochs", "batch", "acc_ensemble", "acc_mean", "nll_ensemble",
          "final_loss", "final_data", "final_kl", "ms_per_step", "seconds", "dwp_priors", "protocol", "torch", "threads",
          "finished")
KEY = ("size", "prior", "seed", "precision")


def _choice(allowed: tuple[str, ...], what: str) -> Any:
    def parse(value: Any) -> tuple[str, ...]:
        names = tuple(p.strip() for p in (value if isinstance(value, (list, tuple)) else str(value).split(","))
                      if p.strip())
        bad = sorted(set(names) - set(allowed))
        if bad or not names:
            raise ValueError(f"unknown {what} {bad}; choose from {','.join(allowed)}")
        return names
    return parse


def _dwp_spec(value: Any) -> str:
    return value if value == RANDOM_SPEC else format_kernel_specs(parse_kernel_specs(value))


@dataclasses.dataclass(frozen=True)
class Bf16CheckConfig(ExperimentConfig):
    """bf16 against fp32 VI training on the paper's MNIST net, paired per seed (validation protocol)."""

    NAME = "bf16_check"

    sizes: tuple[int, ...] = setting((50, 100), "training-set sizes N", role=GRID, parse=parse_ints)
    priors: tuple[str, ...] = setting(PRIORS, f"arms, a subset of {','.join(PRIORS)}", role=GRID,
                                      parse=_choice(PRIORS, "arm(s)"))
    seeds: tuple[int, ...] = setting((0, 1, 2), "data-split (and run) seeds: 0-2, 0,3 or 3", role=GRID,
                                     parse=parse_seeds)
    precisions: tuple[str, ...] = setting(PRECISIONS, "precisions compared (paired per seed)", role=GRID,
                                          parse=_choice(PRECISIONS, "precision(s)"))
    steps: int = setting(400, "optimisation steps per run (epochs = steps / batches per epoch, rounded)")
    batch: int = setting(50, "batch size (the whole set when N <= batch)")
    protocol: str = setting("validation", "the MNIST-10k protocol (validation: never the test images)",
                            choices=("validation", "test"))
    dwp: str = setting(format_kernel_specs(PAPER_DWP), "deep weight prior per kernel size; unversioned names are "
                       "pinned to the newest version before the run", parse=_dwp_spec)
    random_priors: bool = setting(False, "randomly initialised VAEs instead of hub priors (smoke tests only)")
    bound: str = setting("fast", "the deep weight prior's bound", choices=("fast", "full"))
    kernels_per_step: int | None = setting(None, "kernels per layer and step of the fast bound (default 32)")
    eval_mc: int = setting(10, "stochastic passes of the MC ensemble")
    tolerance: float = setting(0.01, "largest mean accuracy loss of bf16 against fp32 (paired over seeds) that "
                                     "counts as validated")
    workers: int = setting(1, "parallel runs (processes)", role=RUN)
    threads: int = setting(0, "torch threads per run (0: cores // workers)", role=RUN)
    out_dir: Path = setting(REPO / "docs" / "results", "report folder", role=RUN)
    csv: Path | None = setting(None, "results CSV (default OUT_DIR/bf16_check.csv)", role=RUN)

    @property
    def csv_path(self) -> Path:
        return self.csv or self.out_dir / "bf16_check.csv"

    def epochs_for(self, size: int) -> int:
        return max(1, round(self.steps / math.ceil(size / self.batch)))

    def prior_spec(self, prior: str) -> str:
        if prior != "dwp":
            return ""
        return RANDOM_SPEC if self.random_priors else self.dwp

    def row_settings(self, *, size: int, prior: str, **_: Any) -> dict[str, Any]:
        """What makes the row of (size, prior): the budget, the protocol, and the prior settings the arm uses."""
        from dwp_hub.inference import DEFAULT_KERNELS_PER_STEP

        out: dict[str, Any] = {"experiment": self.NAME, "epochs": self.epochs_for(size), "batch": self.batch,
                               "eval_mc": self.eval_mc, "protocol": self.protocol}
        if prior == "dwp":
            out.update(dwp=self.prior_spec(prior), bound=self.bound,
                       kernels_per_step=self.kernels_per_step or DEFAULT_KERNELS_PER_STEP)
        return out


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (size, prior, seed, precision); returns the CSV row."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import VIRecipe, fit_vi
    from dwp_hub.paper import paper_net

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    split = mnist10k_protocol(job["size"], job["seed"], protocol=job["protocol"])
    spec = job["dwp_priors"]
    priors: dict[int, Any] = random_priors((7, 5)) if spec == RANDOM_SPEC else parse_kernel_specs(job["dwp"])
    model = paper_net(job["prior"], dwp_priors=priors, seed=job["seed"], bound=job["bound"],
                      kernels_per_step=job["kernels_per_step"])
    recipe = VIRecipe(epochs=job["epochs"], batch_size=job["batch"], seed=job["seed"], eval_mc=job["eval_mc"],
                      precision=job["precision"])
    r = fit_vi(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
               progress=False, metadata={"protocol": split.protocol})
    m = r.metrics
    return {
        "size": job["size"], "prior": job["prior"], "seed": job["seed"], "precision": job["precision"],
        "steps": r.steps, "epochs": job["epochs"], "batch": job["batch"], "acc_ensemble": round(m["acc_ensemble"], 4),
        "acc_mean": round(m["acc_mean"], 4), "nll_ensemble": round(m["nll_ensemble"], 4),
        "final_loss": round(r.final["loss"], 3), "final_data": round(r.final["data"], 3),
        "final_kl": round(r.final["kl"], 3), "ms_per_step": round(r.ms_per_step, 2), "seconds": round(r.seconds, 1),
        "dwp_priors": spec, "protocol": split.protocol, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def jobs(cfg: Bf16CheckConfig) -> list[dict[str, Any]]:
    """Every (size, seed, arm, precision), the precisions of one pair next to each other."""
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    return [{"size": n, "prior": p, "seed": s, "precision": prec, "epochs": cfg.epochs_for(n), "batch": cfg.batch,
             "threads": threads, "dwp": cfg.dwp, "dwp_priors": cfg.prior_spec(p), "bound": cfg.bound,
             "kernels_per_step": cfg.kernels_per_step, "eval_mc": cfg.eval_mc, "protocol": cfg.protocol,
             "settings": cfg.row_settings(size=n, prior=p)}
            for n in cfg.sizes for s in cfg.seeds for p in cfg.priors for prec in cfg.precisions]


# -- the report ----------------------------------------------------------------------------------------------
def _pairs(rows: list[dict[str, str]], size: int, prior: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(seed, fp32 row, bf16 row) for every seed that both precisions ran."""
    by = {(r["seed"], r["precision"]): r for r in rows if int(r["size"]) == size and r["prior"] == prior}
    seeds = sorted({s for s, _ in by}, key=int)
    return [(s, by[(s, "fp32")], by[(s, "bf16")]) for s in seeds if (s, "fp32") in by and (s, "bf16") in by]


def summary(rows: list[dict[str, str]], tolerance: float) -> list[dict[str, Any]]:
    """Per (size, prior) with at least one pair: both precisions' accuracy and ms/step, the paired difference
    bf16 − fp32, and whether its mean is within ``tolerance`` of no loss."""
    out = []
    for size in sorted({int(r["size"]) for r in rows}):
        for prior in [p for p in PRIORS if any(r["prior"] == p for r in rows)]:
            pairs = _pairs(rows, size, prior)
            if not pairs:
                continue
            acc = {prec: [float(r[i]["acc_ensemble"]) for r in pairs] for i, prec in ((1, "fp32"), (2, "bf16"))}
            ms = {prec: statistics.median(float(r[i]["ms_per_step"]) for r in pairs)
                  for i, prec in ((1, "fp32"), (2, "bf16"))}
            diffs = [b - f for f, b in zip(acc["fp32"], acc["bf16"])]
            mu, sd = mean_std(diffs)
            out.append({"size": size, "prior": prior, "n": len(pairs), "fp32": mean_std(acc["fp32"]),
                        "bf16": mean_std(acc["bf16"]), "diff": (mu, sd), "min_diff": min(diffs),
                        "ms_fp32": ms["fp32"], "ms_bf16": ms["bf16"], "within": mu >= -tolerance})
    return out


def write_report(rows: list[dict[str, str]], cfg: Bf16CheckConfig, commands: list[str],
                 rewritten_by: str = "") -> Path:
    """``OUT_DIR/bf16_check.md`` from the CSV rows: measured numbers and the tolerance check only."""
    stats = summary(rows, cfg.tolerance)
    protocols = sorted({re.sub(r"\d+ stratified", "N stratified", re.sub(r" \(seed \d+\)", "", r["protocol"]))
                        for r in rows})  # one line per protocol, not per size and seed
    steps = sorted({int(r["steps"]) for r in rows})
    specs = sorted({r["dwp_priors"] for r in rows if r["dwp_priors"]})
    batches = sorted({int(r["batch"]) for r in rows})
    eval_mc = sorted({json.loads(r["settings"])["eval_mc"] for r in rows if r.get("settings")})
    lines = [
        "# bf16 against fp32 VI training: accuracy, paired per seed (issue 12)",
        "",
        ("Commands (each added rows to the CSV): `" if len(commands) > 1 else "Command: `") + "`; `".join(commands)
        + "`" + (f" (report rewritten by `{rewritten_by}`)" if rewritten_by else ""),
        "",
        (f"The paper's 32/128 MNIST net trained by `fit_vi` with `VIRecipe(precision=\"fp32\")` and with "
        f"`VIRecipe(precision=\"bf16\")` (forward pass under bfloat16 autocast; parameters, KL terms, optimiser and "
        f"evaluation fp32), everything else equal per seed (data split, initialisation, weight noise). Steps per run: "
        f"{', '.join(map(str, steps))}; batch {', '.join(map(str, batches))}. Protocol: {'; '.join(protocols)}. "
        f"Accuracy: MC ensemble of {', '.join(map(str, eval_mc))} passes. Deep weight prior: {', '.join(specs) or '-'}."),
        "",
        ("Accuracy mean ± std over seeds; the difference bf16 − fp32 is paired per seed (number of pairs in brackets); "
        "ms/step: median over the runs (training steps only, on a possibly shared machine; "
        "`tools/bench_vi.py` times the steps interleaved)."),
        "",
        ("| N | prior | fp32 | bf16 | bf16 − fp32 | worst pair | ms/step fp32 | ms/step bf16 | bf16 / fp32 time | "
        f"mean loss <= {cfg.tolerance:g} |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        lines.append(
            f"| {s['size']} | {LABELS[s['prior']]} | {s['fp32'][0]:.4f} ± {s['fp32'][1]:.4f} | "
            f"{s['bf16'][0]:.4f} ± {s['bf16'][1]:.4f} | {s['diff'][0]:+.4f} ± {s['diff'][1]:.4f} ({s['n']}) | "
            f"{s['min_diff']:+.4f} | {s['ms_fp32']:.1f} | {s['ms_bf16']:.1f} | {s['ms_bf16'] / s['ms_fp32']:.2f} | "
            f"{'yes' if s['within'] else 'NO'} |")
    verdict = ("every size and arm within the tolerance" if stats and all(s["within"] for s in stats) else
               "NOT within the tolerance: " + ", ".join(f"N={s['size']} {LABELS[s['prior']]}" for s in stats
                                                        if not s["within"]) if stats else "no pairs yet")
    lines += ["", "## Target", "",
              f"- bf16 loses at most {cfg.tolerance:g} accuracy on average against fp32 (paired per seed): {verdict}."]
    lines += ["", "## Runs", "", ("| N | prior | seed | fp32 acc | bf16 acc | bf16 − fp32 | final data term fp32 | "
              "final data term bf16 |"), "|---|---|---|---|---|---|---|---|"]
    for s in stats:
        for seed, f, b in _pairs(rows, s["size"], s["prior"]):
            lines.append(f"| {s['size']} | {LABELS[s['prior']]} | {seed} | {float(f['acc_ensemble']):.4f} | "
                         f"{float(b['acc_ensemble']):.4f} | {float(b['acc_ensemble']) - float(f['acc_ensemble']):+.4f} | "
                         f"{float(f['final_data']):.3f} | {float(b['final_data']):.3f} |")
    lines += notes_section(cfg.notes, cfg.out_dir, "bf16_check")
    torch_versions = sorted({r["torch"] for r in rows})
    lines += ["", (f"Runs: {len(rows)} (torch {', '.join(torch_versions)}); total training time "
              f"{sum(float(r['seconds']) for r in rows) / 60:.1f} min.")]
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    md = cfg.out_dir / "bf16_check.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def main(argv: list[str] | None = None) -> int:
    def extra(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--report-only", action="store_true", help="only rewrite the report from the CSV")

    cfg, ns = Bf16CheckConfig.from_args(argv, __doc__.split("\n\n")[0], extra)
    assert isinstance(cfg, Bf16CheckConfig)
    command = command_line("bf16_check", argv)
    results = ResultFile(cfg.csv_path, FIELDS, KEY)
    if ns.report_only:
        if not results.rows:
            raise SystemExit(f"No rows in {cfg.csv_path}.")
        print(write_report(results.rows, cfg, results.commands() or [command], rewritten_by=command))
        return 0
    if "bf16" in cfg.precisions:
        from dwp_hub.inference.vi import bf16_supported

        if not bf16_supported("cpu"):
            raise SystemExit("bf16_check: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so fit_vi refuses "
                             "precision='bf16' here; run the check on a machine that has it.")
    if not cfg.random_priors and "dwp" in cfg.priors:  # rows record the pinned versions
        cfg = cfg.replace(dwp=format_kernel_specs(pin_specs(parse_kernel_specs(cfg.dwp))))
    todo = [j for j in jobs(cfg) if not results.has(j["settings"], size=j["size"], prior=j["prior"], seed=j["seed"],
                                                    precision=j["precision"])]
    print(f"{len(todo)} run(s) to do ({len(results.rows)} row(s) already in {cfg.csv_path}; config {cfg.sha256()})",
          flush=True)
    if todo:
        results.record(command)
    settings = {(j["size"], j["prior"], j["seed"], j["precision"]): j["settings"] for j in todo}

    def report(row: dict[str, Any]) -> None:
        results.add([row], settings[(row["size"], row["prior"], row["seed"], row["precision"])])
        print(f"  N={row['size']:<4} {row['prior']:<16} seed {row['seed']} {row['precision']}: acc "
              f"{row['acc_ensemble']:.4f} (mean weights {row['acc_mean']:.4f}), {row['ms_per_step']:.1f} ms/step",
              flush=True)

    run_jobs(todo, run_one, report, cfg.workers)
    if results.rows:
        print(write_report(results.rows, cfg, results.commands() or [command]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
