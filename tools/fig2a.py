"""Reproduce the paper's Fig. 2a: MNIST test accuracy of VI by prior and training-set size.

Protocol: the MNIST-10k protocol (:func:`dwp_hub.data.mnist10k_protocol`: N class-stratified
training images from MNIST-10k images 0-4999 drawn by the data-split seed, test on images
5000-9999). Net: the paper's fconv 32/128 with Bayesian conv layers (:func:`dwp_hub.paper.paper_net`).
Priors: deep weight prior (notmnist-7x7 + notmnist-5x5), log-uniform, standard normal, and the
deterministic net with L2. Recipe: :class:`dwp_hub.inference.VIRecipe` (Adam 1e-3 linear decay,
10,000 epochs, batch 256, KL weight 1); accuracy of a 10-pass MC ensemble.

Config-first: :class:`Fig2aConfig` holds every setting (``--config FILE`` reads them from YAML, every flag
overrides one). Every finished run is appended to the CSV at once, keyed by (size, prior, seed) and the hash of
the settings that produced it (epochs, batch, MC passes; for arms that use the deep weight prior also its
pinned spec, and for the deep-weight-prior arms the bound), so runs of several ``--dwp`` specs share one CSV and
show as one arm each in the report. A restarted command skips rows already there and resumes unfinished runs
from their checkpoints (``--work-dir``). The table, plot and notes are rewritten from the CSV at the end (or
alone with ``--report-only``); interpretation comes from the config's ``notes`` and ``OUT_DIR/fig2a.notes.md``.

``--keep-posteriors`` saves each run's final model state (safetensors, written atomically; no optimiser state and
no frozen hub decoders: 0.9 MB for the 32/128 net, 3 MB under the deep weight prior, whose reverse models
and fast-bound state come along) as ``POSTERIOR_DIR/<config hash>-n<N>-<arm>-s<seed>
.safetensors`` (default ``WORK_DIR/posteriors``), with what rebuilds the model and the run's CSV row in its
header, for ``tools/ood.py``. With it a run counts as done when its row and its posterior are both there: a row
without a posterior is run again (its row replaced), a posterior without a row gives the row back.

Usage (``--seeds``: ``0-4``, ``0,3`` or ``3``, the seed syntax of every script)::

    DWP_HUB_DATA=../shared/data python tools/fig2a.py --seeds 0-4 --workers 2              # the paper's budget
    DWP_HUB_DATA=../shared/data python tools/fig2a.py --steps 400 --batch 50 --workers 2 --threads 1
                                                      # a fixed step budget (what a 2-core machine affords)
    DWP_HUB_DATA=../shared/data python -m tools.fig2a --config tools/configs/fig2a-400-steps.yaml
    python tools/fig2a.py --report-only            # table + plot from the CSV
    DWP_HUB_DATA=../shared/data python -m tools.fig2a --config tools/configs/fig2a-ood.yaml   # posteriors for ood.py
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/fig2a.py): register the tools package
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import hashlib
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from dwp_hub.errors import CheckpointError
from dwp_hub.paper import PAPER_DWP, PAPER_WIDTHS
from tools._experiment import (
    GRID,
    RANDOM_SPEC,
    REPO,
    RUN,
    ExperimentConfig,
    ResultFile,
    command_line,
    config_hash,
    format_kernel_specs,
    notes_section,
    parse_device,
    parse_ints,
    parse_kernel_specs,
    parse_seeds,
    pin_specs,
    random_priors,
    run_jobs,
    setting,
)

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
#: Fig. 2a of the paper (mean of 10 data-split seeds, read off the figure; recipe file).
PAPER = {
    "dwp": (0.800, 0.867, 0.915, 0.945, 0.961),
    "log-uniform": (0.766, 0.839, 0.894, 0.938, 0.958),
    "standard-normal": (0.717, 0.816, 0.890, 0.938, 0.959),
    "deterministic": (0.751, 0.827, 0.879, 0.926, 0.954),
}
#: The paper's training budget for Fig. 2a (epochs); a target line at a shorter budget says so.
PAPER_EPOCHS = 10_000
FIELDS = ("size", "prior", "seed", "epochs", "batch", "acc_ensemble", "acc_mean", "nll_ensemble", "steps", "seconds",
          "ms_per_step", "bound", "kernels_per_step", "dwp_priors", "protocol", "torch", "threads", "device",
          "finished", "gap_per_kernel", "dwp_hub", "commit")
KEY = ("size", "prior", "seed")


def uses_dwp(prior: str) -> bool:
    """Whether an arm needs the deep weight priors (as prior or for its initialisation)."""
    return "dwp" in ARMS[prior]


def _arms(value: Any) -> tuple[str, ...]:
    names = tuple(p.strip() for p in (value if isinstance(value, (list, tuple)) else str(value).split(","))
                  if p.strip())
    bad = sorted(set(names) - set(PRIORS))
    if bad or not names:
        raise ValueError(f"unknown arm(s) {bad}; choose from {','.join(PRIORS)}")
    return names


def _dwp_spec(value: Any) -> str:
    return value if value == RANDOM_SPEC else format_kernel_specs(parse_kernel_specs(value))


def _widths(value: Any) -> tuple[int, int]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        widths = tuple(int(str(v).strip()) for v in items if str(v).strip())
    except ValueError:
        widths = ()
    if len(widths) != 2 or min(widths) < 1:
        raise ValueError(f"expected two positive conv widths like 32,128, got {value!r}")
    return (widths[0], widths[1])


@dataclasses.dataclass(frozen=True)
class Fig2aConfig(ExperimentConfig):
    """Fig. 2a: VI on the paper's MNIST net by prior (arm) and training-set size."""

    NAME = "fig2a"

    sizes: tuple[int, ...] = setting(SIZES, "training-set sizes N", role=GRID, parse=parse_ints)
    priors: tuple[str, ...] = setting(DEFAULT_PRIORS, f"arms, a subset of {','.join(PRIORS)}", role=GRID,
                                      parse=_arms)
    seeds: tuple[int, ...] = setting((0, 1, 2, 3, 4), "data-split seeds: 0-4, 0,3 or 3", role=GRID,
                                     parse=parse_seeds)
    epochs: int = setting(PAPER_EPOCHS, f"epochs per run (the paper: {PAPER_EPOCHS:,})")
    steps: int | None = setting(None, "a fixed step budget per run instead of --epochs (epochs = steps / batches "
                                      "per epoch, rounded); for machines where 10,000 epochs is out of reach")
    batch: int = setting(256, "batch size (the whole set when N <= batch)")
    dwp: str = setting(format_kernel_specs(PAPER_DWP), "deep weight prior per kernel size; unversioned names are "
                       "pinned to the newest version before the run (rows record the pinned spec)", parse=_dwp_spec)
    random_priors: bool = setting(False, "randomly initialised VAEs instead of hub priors (smoke tests only; "
                                         "marked in the CSV)")
    bound: str = setting("fast", "the deep weight prior's bound", choices=("fast", "full"))
    kernels_per_step: int | None = setting(None, "kernels per layer and step of the fast bound (default 32)")
    eval_mc: int = setting(10, "stochastic passes of the MC ensemble")
    widths: tuple[int, int] = setting(PAPER_WIDTHS, "conv widths h0,h1 of the fconv net (the paper's: 32,128; rows "
                                                    "record other widths in their settings)", parse=_widths)
    gap_k: int = setting(0, "at the end of each deep-weight-prior run, estimate the bound's gap (Appendix F) with K "
                            "importance samples (0: skip)", role=RUN)
    checkpoint_every: int = setting(1000, "steps between run checkpoints", role=RUN)
    workers: int = setting(1, "parallel runs (processes)", role=RUN)
    threads: int = setting(0, "torch threads per run (0: cores // workers)", role=RUN)
    device: str = setting("cpu", "where each run trains and is evaluated (cpu, cuda, cuda:N); workers share it; rows "
                          "record it (a GPU's results differ from the CPU's by float rounding only)", role=RUN,
                          parse=parse_device)
    out_dir: Path = setting(REPO / "docs" / "results", "report folder", role=RUN)
    csv: Path | None = setting(None, "results CSV (default OUT_DIR/fig2a.csv)", role=RUN)
    work_dir: Path = setting(REPO / "runs" / "fig2a", "per-run checkpoints", role=RUN)
    keep_checkpoints: bool = setting(False, "keep finished runs' checkpoints", role=RUN)
    keep_posteriors: bool = setting(False, "save each run's final model state (the posterior; tools/ood.py scores "
                                           "it) as POSTERIOR_DIR/<row key>.safetensors; a run whose row and "
                                           "posterior are both there is not redone", role=RUN)
    posterior_dir: Path | None = setting(None, "folder of the kept posteriors (default WORK_DIR/posteriors)",
                                         role=RUN)
    compare: Path | None = setting(None, "another fig2a CSV (another budget): the report adds both budgets side "
                                         "by side", role=RUN)
    scored_csv: Path | None = setting(None, "the tools/ood.py CSV that scores these runs: with keep_posteriors, a run "
                                            "whose row is here and which that CSV has scored counts as done without "
                                            "its posterior (posteriors are git-ignored; the scored rows are what "
                                            "is kept)", role=RUN)

    @property
    def csv_path(self) -> Path:
        return self.csv or self.out_dir / "fig2a.csv"

    @property
    def posteriors(self) -> Path:
        """Where the kept posteriors go (:attr:`posterior_dir`, default ``WORK_DIR/posteriors``)."""
        return self.posterior_dir or self.work_dir / "posteriors"

    def epochs_for(self, size: int) -> int:
        """Epochs of a run on ``size`` examples (from ``steps`` when it is set)."""
        if self.steps is None:
            return self.epochs
        return max(1, round(self.steps / math.ceil(size / self.batch)))

    def prior_spec(self, prior: str) -> str:
        """What a row of this arm records as ``dwp_priors`` ("" for arms without the deep weight prior)."""
        if not uses_dwp(prior):
            return ""
        return RANDOM_SPEC if self.random_priors else self.dwp

    def row_settings(self, *, size: int, prior: str, **_: Any) -> dict[str, Any]:
        """The settings that make the row of (size, prior): the budget, and only the prior settings the arm uses."""
        from dwp_hub.inference import DEFAULT_KERNELS_PER_STEP

        out: dict[str, Any] = {"experiment": self.NAME, "epochs": self.epochs_for(size), "batch": self.batch,
                               "eval_mc": self.eval_mc}
        if uses_dwp(prior):
            out["dwp"] = self.prior_spec(prior)
        if ARMS[prior][0] == "dwp":
            out["bound"] = self.bound
            out["kernels_per_step"] = self.kernels_per_step or DEFAULT_KERNELS_PER_STEP
        if tuple(self.widths) != PAPER_WIDTHS:  # only when not the paper's: older rows keep their hashes
            out["widths"] = list(self.widths)
        return out


def posterior_name(settings: dict[str, Any], size: int, prior: str, seed: int) -> str:
    """File name of a run's kept posterior: its row key (the config hash of the row's settings, size, arm, seed)."""
    return f"{config_hash(settings)}-n{size}-{prior}-s{seed}.safetensors"


#: Header key (in the posterior's checkpoint metadata) of what rebuilds the run's model and its CSV row.
POSTERIOR_META = "fig2a"


def read_posterior_meta(path: str | Path) -> dict[str, Any]:
    """The :data:`POSTERIOR_META` record of a kept posterior: ``row`` (the CSV row), ``settings``, ``size``,
    ``prior``, ``seed``, ``paper_prior``, ``init``, ``widths``, ``dwp_priors``."""
    from dwp_hub.inference.vi import read_checkpoint

    _, meta = read_checkpoint(path)
    if POSTERIOR_META not in meta:
        raise ValueError(f"{path} is a VI checkpoint but not a fig2a posterior (no {POSTERIOR_META!r} record)")
    return dict(meta[POSTERIOR_META])


def legacy_match(row: dict[str, str], settings: dict[str, Any]) -> bool:
    """Rows written before config hashing: the old key (epochs, batch and, for dwp arms, the prior spec)."""
    if int(row["epochs"]) != settings["epochs"] or int(row.get("batch") or 256) != settings["batch"]:
        return False
    return "dwp" not in settings or _row_spec(row.get("dwp_priors") or "") == _row_spec(settings["dwp"])


def result_file(path: Path) -> ResultFile:
    return ResultFile(path, FIELDS, KEY, legacy=legacy_match)


def _row_spec(spec: str) -> str:
    """A CSV row's ``dwp_priors`` with unversioned names read as 1.0.0: rows written before this tool
    pinned versions were all made while 1.0.0 was the only version ("" : rows older than the column)."""
    if spec == RANDOM_SPEC:
        return spec
    if not spec:
        spec = "7=notmnist-7x7,5=notmnist-5x5"  # rows older than the column: the defaults of that time
    parts = []
    for item in spec.split(","):
        size, _, ref = item.partition("=")
        ref = ref.strip()
        parts.append(f"{size.strip()}={ref if '@' in ref else ref + '@1.0.0'}")
    return ",".join(parts)


def _old_7x7(spec: str) -> bool:
    """Whether a dwp spec uses the 1.0.0 notmnist-7x7 prior."""
    for item in _row_spec(spec).split(","):
        size, _, ref = item.partition("=")
        if size.strip() == "7" and ref.strip() == "notmnist-7x7@1.0.0":
            return True
    return False


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (size, prior, seed); returns the CSV row."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import DEFAULT_KERNELS_PER_STEP, VIRecipe, fit_deterministic, fit_vi
    from dwp_hub.paper import paper_net

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    split = mnist10k_protocol(job["size"], job["seed"])
    spec = job["dwp_priors"]
    priors: dict[int, Any] = random_priors((7, 5)) if spec == RANDOM_SPEC else parse_kernel_specs(job["dwp"])
    prior, init = ARMS[job["prior"]]
    widths = tuple(job.get("widths") or PAPER_WIDTHS)
    model = paper_net(prior, dwp_priors=priors, widths=widths, seed=job["seed"], bound=job["bound"],
                      kernels_per_step=job["kernels_per_step"], init=init)
    recipe = VIRecipe(epochs=job["epochs"], batch_size=job["batch"], seed=job["seed"], eval_mc=job["eval_mc"],
                      checkpoint_every=job["checkpoint_every"])
    fit = fit_deterministic if job["prior"] == "deterministic" else fit_vi
    tag = f"-{hashlib.sha256(spec.encode()).hexdigest()[:8]}" if uses_dwp(job["prior"]) else ""
    if prior == "dwp" and job["bound"] == "full":  # runs of another bound or m never resume each other's checkpoints
        tag += "-full"
    elif prior == "dwp" and job["kernels_per_step"] not in (None, DEFAULT_KERNELS_PER_STEP):
        tag += f"-m{job['kernels_per_step']}"
    wtag = f"-w{widths[0]}x{widths[1]}" if widths != PAPER_WIDTHS else ""
    name = f"n{job['size']}-{job['prior']}{tag}{wtag}-s{job['seed']}-e{job['epochs']}-b{job['batch']}.safetensors"
    ck = Path(job["work_dir"]) / name
    result = fit(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
                 checkpoint=ck, progress=False, metadata={"protocol": split.protocol}, device=job.get("device"))
    m = result.metrics
    gap = ""
    if prior == "dwp" and job.get("gap_k"):  # Appendix F: the auxiliary bound's gap per layer, end of run
        from dwp_hub.inference import bound_gap

        est = bound_gap(model, k=job["gap_k"], generator=torch.Generator().manual_seed(job["seed"]))
        gap = ";".join(f"{name}={g.gap_per_kernel:.3f}" for name, g in est.items())
    row = {
        "size": job["size"], "prior": job["prior"], "seed": job["seed"], "epochs": job["epochs"], "batch": job["batch"],
        "acc_ensemble": round(m["acc_ensemble"], 4), "acc_mean": round(m["acc_mean"], 4),
        "nll_ensemble": round(m["nll_ensemble"], 4), "steps": result.steps,
        # training time of all the run's steps, across resumes ("" when a checkpoint did not record it)
        "seconds": "" if result.total_seconds is None else round(result.total_seconds, 1),
        "ms_per_step": "" if result.total_seconds is None else round(1000 * result.total_seconds / result.steps, 2),
        "bound": job["bound"] if prior == "dwp" else "",
        "kernels_per_step": (job["kernels_per_step"] or DEFAULT_KERNELS_PER_STEP) if prior == "dwp" else "",
        "dwp_priors": spec,
        "protocol": split.protocol, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": str(next(model.parameters()).device), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "_checkpoint": str(ck), "gap_per_kernel": gap,
    }
    if job.get("posterior"):
        save_posterior(Path(job["posterior"]), model, job, row, init=init, widths=widths)
    return row


def save_posterior(path: Path, model: Any, job: dict[str, Any], row: dict[str, Any], *, init: str,
                   widths: tuple[int, ...]) -> None:
    """Write the run's final model state (no optimiser state, no frozen hub decoders) atomically to ``path``,
    with what rebuilds the model and the run's CSV row (:func:`read_posterior_meta`)."""
    from dwp_hub.inference import save_checkpoint

    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"row": {k: v for k, v in row.items() if not k.startswith("_")}, "settings": job["settings"],
              "config_sha256": config_hash(job["settings"]), "size": job["size"], "prior": job["prior"],
              "seed": job["seed"], "paper_prior": ARMS[job["prior"]][0], "init": init, "widths": list(widths),
              "dwp_priors": job["dwp_priors"], "bound": job["bound"], "kernels_per_step": job["kernels_per_step"]}
    save_checkpoint(path, model, meta={POSTERIOR_META: record})


def read_rows(path: Path) -> list[dict[str, str]]:
    return ResultFile.read(path)


Arm = tuple[str, str]  # (prior, dwp spec; "" for the other priors)


def _arm(r: dict[str, str]) -> Arm:
    """(prior, spec): rows of the deep weight prior under the exact bound are an arm of their own."""
    if not uses_dwp(r["prior"]):
        return (r["prior"], "")
    spec = _row_spec(r.get("dwp_priors") or "")
    return (r["prior"], f"{spec}, full bound" if r.get("bound") == "full" else spec)


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


#: The 2 x 2 of arms (prior x mean initialisation): each effect is the paired difference of two arms that differ in
#: one factor only (the first minus the second).
EFFECTS = (("the prior, dwp-initialised means", "dwp", "sn-dwp-init"),
           ("the prior, Xavier means", "dwp-xavier-init", "standard-normal"),
           ("the initialisation, standard-normal prior", "sn-dwp-init", "standard-normal"),
           ("the initialisation, deep weight prior", "dwp", "dwp-xavier-init"))


def factorial_table(rows: list[dict[str, str]], sizes: list[int], dwp_arms: list[Arm]) -> list[str]:
    """Markdown lines: how much of the deep weight prior's effect is its prior term and how much its initialisation,
    from the 2 x 2 of arms (``EFFECTS``), as paired differences over the seeds both arms ran (mean ± paired std,
    seeds in brackets), per set of deep weight priors; none when no effect has two paired seeds."""
    def uncommitted(arm: Arm, n: int) -> bool:  # a row made before rows recorded their commit: code unknown
        return any(not r.get("commit") for r in rows if _arm(r) == arm and int(r["size"]) == n)

    found: dict[str, list[tuple[str, list[str]]]] = {}  # dwp spec -> (effect, cells) with a paired cell
    for sp in dict.fromkeys(sp for _, sp in dwp_arms):
        for name, a, b in EFFECTS:
            arm_a, arm_b = (a, sp if uses_dwp(a) else ""), (b, sp if uses_dwp(b) else "")
            cells = []
            for n in sizes:
                d = _paired_diffs(rows, arm_a, arm_b, n)
                mark = " †" if uncommitted(arm_a, n) or uncommitted(arm_b, n) else ""
                cells.append(f"{statistics.mean(d):+.3f} ± {statistics.stdev(d):.3f} ({len(d)}){mark}"
                             if len(d) >= 2 else "-")
            if any(c != "-" for c in cells):
                found.setdefault(sp, []).append((f"{name} ({LABELS[a]} − {LABELS[b]})", cells))
    if not found:
        return []
    body = [f"| {name}{f' [{sp}]' if len(found) > 1 else ''} | " + " | ".join(cells) + " |"
            for sp, effects in found.items() for name, cells in effects]
    return ["", "## Prior or initialisation: paired differences of the 2 x 2 of arms", "",
            "Accuracy of the first arm minus the second, paired by data-split seed (mean ± std of the differences, "
            "seeds in brackets; no targets here). Where |mean| exceeds the std, the effect is larger than one paired "
            "seed std, the bar the Targets use.", "",
            "| effect | " + " | ".join(str(n) for n in sizes) + " |", "|---|" + "---|" * len(sizes), *body,
            *(["", "† Some of these rows predate the commit column, so the two arms may have run different code: "
               "compare them with care."] if any("†" in line for line in body) else [])]


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
                 rewritten_by: str = "", compare: tuple[str, list[dict[str, str]]] | None = None,
                 notes: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Markdown table (ours beside the paper's) and plot from the CSV rows; with ``compare``
    (a name and another CSV's rows) also a table of both budgets side by side. Interpretation comes only from
    ``notes`` (the config's) and ``OUT_DIR/<stem>.notes.md``."""
    sizes = sorted({int(r["size"]) for r in rows}) or list(SIZES)
    priors = [p for p in PRIORS if any(r["prior"] == p for r in rows)]
    dwp_specs = list(dict.fromkeys(_arm(r)[1] for r in rows if uses_dwp(r["prior"])))  # first appearance
    multi = len(dwp_specs) > 1
    arms_of = {p: [(p, sp) for sp in dwp_specs if any(_arm(r) == (p, sp) for r in rows)] if uses_dwp(p)
               else [(p, "")] for p in priors}
    arms = [a for p in priors for a in arms_of[p]]
    label = {a: f"{LABELS[a[0]]} [{a[1] or '?'}]" if multi and uses_dwp(a[0]) else LABELS[a[0]] for a in arms}
    st = _stats(rows, sizes, arms)
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
        (f"Training per run: {budget} (paper: {PAPER_EPOCHS:,} epochs, the whole set per step for N <= 256). Protocol: "
         "MNIST-10k (N stratified training images from MNIST-10k images 0-4999 by the data-split seed, test on images "
         "5000-9999); the paper used the 60k training set and 10k test set. Accuracy: MC ensemble of 10 stochastic "
         f"passes. Deep weight prior: {', '.join(dwp_src) or '-'}"
         + ("; its KL is the paper's auxiliary bound with the reverse model r(z|w) initialised from the prior's encoder "
            "and trained with the means (the paper's Algorithm 1; the authors' release keeps it frozen), the decoder "
            "frozen, estimated by the fast bound unless the arm says full bound." if dwp_src else ".")),
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
                short = sorted({e for e, _, _ in per_size[n] if e < PAPER_EPOCHS})
                lines.append(f"- N={n}: {label[a]} {mu:.3f} vs paper {paper[n]:.3f}: "
                             f"{'met' if mu >= paper[n] else 'MISSED'}"
                             + (f" (at {' / '.join(map(str, short))} epochs; the paper's {PAPER_EPOCHS:,})"
                                if short else ""))
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
    lines += factorial_table(rows, sizes, [a for a in arms if uses_dwp(a[0])])
    gaps = [(int(r["size"]), r["prior"] + (" (full bound)" if r.get("bound") == "full" else ""), r["seed"],
             r["gap_per_kernel"]) for r in rows if r.get("gap_per_kernel")]
    if gaps:
        lines += ["", "## Appendix F: gap of the auxiliary bound at the end of each run (nats per kernel, per layer)", ""]
        lines += [f"- N={n}, {arm}, seed {sd}: {g}" for n, arm, sd, g in sorted(gaps)]
    lines += notes_section(notes, out_dir, stem)
    if compare is not None:
        lines += ["", f"## Both budgets: this table beside {compare[0]}", "", *budget_table(rows, compare[1], compare[0])]
        larger = tuple(sorted({int(r["size"]) for r in rows + compare[1]} - {50, 100}))
        if larger:  # the sizes beyond the paper-budget runs: the longest budget run at each, stated per size
            lines += ["", f"At N = {' / '.join(map(str, larger))} (a dash: no row at this budget yet; the Budgets "
                      "line says which budget each column ran):", "",
                      *budget_table(rows, compare[1], compare[0], sizes=larger)]
    timed = [r for r in rows if r.get("seconds") not in ("", None)]
    untimed = f"; {len(rows) - len(timed)} resumed run(s) without a recorded time" if len(timed) < len(rows) else ""
    if timed:
        lines += ["", f"Runs: {len(rows)}; total training time {sum(float(r['seconds']) for r in timed) / 3600:.2f} h "
                  f"(median {statistics.median(float(r['ms_per_step']) for r in timed):.1f} ms/step){untimed}."]
    elif rows:
        lines += ["", f"Runs: {len(rows)}; no recorded training time."]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = sum(len(arms_of[p]) + (p in PAPER) for p in priors)
    below = multi or entries > 6  # many entries: the legend goes below the axes, where it hides no point
    fig, ax = plt.subplots(figsize=(6, 4.2 + (0.25 * len(arms) if multi else 0.13 * entries if below else 0)))
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
    ax.set_title("MNIST, VI with different priors" + budget_title(rows), fontsize=10)
    ax.grid(alpha=0.3)
    place = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.15)} if below else {}
    ax.legend(fontsize=7, ncol=1 if multi else 2, **place)  # long spec labels: one column
    fig.tight_layout()
    png = out_dir / f"{stem}.png"
    fig.savefig(png, dpi=130)
    plt.close(fig)
    return md, png


def budget_title(rows: list[dict[str, Any]]) -> str:
    """The figure title's budget: one epoch count, or the steps per run of each group of sizes."""
    epochs = {int(r["epochs"]) for r in rows}
    if len(epochs) == 1:
        return f" ({epochs.pop()} epochs)"
    steps: dict[int, list[int]] = {}
    for n in sorted({int(r["size"]) for r in rows}):
        steps.setdefault(max(int(r["steps"]) for r in rows if int(r["size"]) == n), []).append(n)
    if len(steps) == 1:
        return f" ({next(iter(steps)):,} steps per run)"
    return "\n(" + "; ".join(f"{k:,} steps at N = {'/'.join(map(str, v))}" for k, v in steps.items()) + ")"


def jobs(cfg: Fig2aConfig) -> list[dict[str, Any]]:
    """Every (size, seed, arm) of the config as a job for :func:`run_one` (settings and row key included)."""
    cores = os.cpu_count() or 1
    threads = cfg.threads or max(1, cores // max(1, cfg.workers))
    out = []
    for n in cfg.sizes:
        for s in cfg.seeds:
            for p in cfg.priors:
                settings = cfg.row_settings(size=n, prior=p)
                posterior = str(cfg.posteriors / posterior_name(settings, n, p, s)) if cfg.keep_posteriors else ""
                out.append({"size": n, "prior": p, "seed": s, "epochs": cfg.epochs_for(n), "batch": cfg.batch,
                            "threads": threads, "dwp": cfg.dwp, "dwp_priors": cfg.prior_spec(p), "bound": cfg.bound,
                            "kernels_per_step": cfg.kernels_per_step, "eval_mc": cfg.eval_mc,
                            "checkpoint_every": cfg.checkpoint_every, "work_dir": str(cfg.work_dir),
                            "gap_k": cfg.gap_k, "settings": settings, "widths": list(cfg.widths),
                            "posterior": posterior, "device": cfg.device})
    return out


def _scored(path: Path | None) -> set[tuple[int, str, int, str]]:
    """The (size, arm, seed, Fig. 2a config hash) of the runs a tools/ood.py CSV has scored."""
    if path is None or not Path(path).is_file():
        return set()
    return {(int(r["size"]), r["prior"], int(r["seed"]), r["fig2a_config"]) for r in ResultFile.read(path)
            if r.get("fig2a_config")}


def plan(cfg: Fig2aConfig, results: ResultFile) -> tuple[list[dict[str, Any]], int, int]:
    """The jobs to run, and how many of them rerun a row for its posterior. With ``keep_posteriors`` a run counts
    as done when its row and its posterior are both there, or its row and a scored row in ``scored_csv``; a posterior whose row is missing (a run killed between
    the two) gives the row back from the posterior's record (counted as recovered), without training again."""
    todo, rerun, recovered = [], 0, 0
    scored = _scored(cfg.scored_csv)
    for j in jobs(cfg):
        key = {"size": j["size"], "prior": j["prior"], "seed": j["seed"]}
        has_row = results.has(j["settings"], **key)
        if not cfg.keep_posteriors:
            if not has_row:
                todo.append(j)
            continue
        if has_row and (j["size"], j["prior"], j["seed"], config_hash(j["settings"])) in scored:
            continue  # scored by tools/ood.py: the posterior has served its purpose
        post = Path(j["posterior"])
        if post.is_file():
            if has_row:
                continue
            try:
                record = read_posterior_meta(post)
            except (CheckpointError, ValueError, OSError):  # unreadable or not ours: train again
                record = {}
            if record.get("config_sha256") == config_hash(j["settings"]) and record.get("row"):
                results.add([record["row"]], j["settings"])
                recovered += 1
                continue
        rerun += has_row
        todo.append(j)
    return todo, rerun, recovered


def _report_command(results: ResultFile, command: str, out_dir: Path) -> tuple[str, str]:
    """(the commands that made the rows, the command that rewrote the report or "")."""
    if results.commands():
        return "`; `".join(results.commands()), command
    old_md = out_dir / "fig2a.md"  # older folders: the command in the report
    if old_md.exists():
        for line in old_md.read_text().splitlines():
            if line.startswith("Command: `") and "--report-only" not in line:
                return line[len("Command: `"):].split("`")[0], command
    return command, ""


def main(argv: list[str] | None = None) -> int:
    def extra(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--report-only", action="store_true", help="only rewrite the report from the CSV")
        ap.add_argument("--merge", type=Path, nargs="+", metavar="CSV", default=[],
                        help="add the rows of these partition CSVs (runs split by --sizes/--seeds/--priors, each "
                             "with its own --csv) that the config's CSV lacks, then rewrite the report")

    cfg, ns = Fig2aConfig.from_args(argv, "Reproduce the paper's Fig. 2a on the MNIST-10k protocol.", extra)
    assert isinstance(cfg, Fig2aConfig)
    command = command_line("fig2a", argv)
    results = result_file(cfg.csv_path)
    for part in ns.merge:
        try:
            added = results.merge(part)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        print(f"{part}: {added} row(s) added to {cfg.csv_path}")
    if ns.report_only or ns.merge:
        if not results.rows:
            raise SystemExit(f"No rows in {cfg.csv_path}.")
        made_by, rewritten_by = _report_command(results, command, cfg.out_dir)
        compare = None
        if cfg.compare is not None:
            compare = (os.path.relpath(cfg.compare, cfg.out_dir), read_rows(cfg.compare))
        print("\n".join(map(str, write_report(results.rows, cfg.out_dir, made_by, rewritten_by=rewritten_by,
                                               compare=compare, notes=cfg.notes))))
        return 0
    if not cfg.random_priors and any(uses_dwp(p) for p in cfg.priors):  # rows record the pinned versions
        cfg = cfg.replace(dwp=format_kernel_specs(pin_specs(parse_kernel_specs(cfg.dwp))))
    todo, rerun, recovered = plan(cfg, results)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    extra = (f"; {rerun} of them rerun for the posterior their row lacks" if rerun else "") + (
        f"; {recovered} row(s) recovered from kept posteriors" if recovered else "")
    print(f"{len(todo)} run(s) to do ({len(results.rows)} row(s) already in {cfg.csv_path}; config "
          f"{cfg.sha256()}{extra}); {cfg.workers} worker(s) x {threads} thread(s)"
          + (f"; posteriors kept in {cfg.posteriors}" if cfg.keep_posteriors else ""), flush=True)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    if todo:
        results.record(command)
    t0 = time.perf_counter()
    settings = {(j["size"], j["prior"], j["seed"]): j["settings"] for j in todo}

    def report(row: dict[str, Any]) -> None:
        key = (row["size"], row["prior"], row["seed"])
        results.discard(settings[key], size=key[0], prior=key[1], seed=key[2])  # a row rerun for its posterior
        results.add([row], settings[key])
        if not cfg.keep_checkpoints:  # the CSV row is the result; checkpoints only serve unfinished runs
            Path(row["_checkpoint"]).unlink(missing_ok=True)
        took = "time not recorded" if row["seconds"] == "" else (f"{row['seconds']:.0f} s, "
                                                                  f"{row['ms_per_step']:.1f} ms/step")
        print(f"  N={row['size']:<5} {row['prior']:<16} seed {row['seed']}: acc {row['acc_ensemble']:.4f} "
              f"(mean weights {row['acc_mean']:.4f}), {took}", flush=True)

    run_jobs(todo, run_one, report, cfg.workers)
    if results.rows:
        made_by = "`; `".join(results.commands()) or command
        md, png = write_report(results.rows, cfg.out_dir, made_by, notes=cfg.notes)
        print(f"{len(todo)} run(s) in {time.perf_counter() - t0:.0f} s; wrote {cfg.csv_path}, {md}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
