"""Out-of-distribution benchmark of the Fig. 2a posteriors (issue 13.4): does the deep weight prior help uncertainty?

Runs: the Bayesian nets of Fig. 2a (``tools/fig2a.py --keep-posteriors``: every arm, N = 50 ... 1000, the
MNIST-10k test protocol), one kept posterior per row of the Fig. 2a CSV, so the same trained runs make both
tables. Each posterior's model is rebuilt from its row's recorded settings (arm, deep weight prior spec, bound,
widths; :func:`dwp_hub.paper.paper_net`), its state loaded (:func:`dwp_hub.inference.load_checkpoint`), and
scored with :func:`dwp_hub.inference.predict` (``samples`` MC passes, generator-seeded) on

* in-distribution: MNIST-10k images 5000-9999 (the test half of the protocol, the images Fig. 2a scores),
* out-of-distribution: notMNIST-10k images 5000-9999 (the same indices of the notMNIST file, as many images);
  ``n_images`` takes the first N of each range.

Metrics per run: in-distribution accuracy, NLL, Brier score and ECE of the MC predictive
(:func:`dwp_hub.inference.classification_metrics`, ``ece_bins`` equal-width bins); the AUROC of telling OOD from
in-distribution images (OOD the positive class) by the predictive entropy and by the mutual information between
prediction and weights (rank statistic, ties counted half: :func:`auroc`); the mean entropy and mutual information
on each set. The deterministic arm (one pass, no weight uncertainty) has no mutual information: its AUROC of MI
is n/a and its entropy is that of its softmax. The mean-weights accuracy of the rebuilt model is recomputed
exactly as Fig. 2a computed it, and the report checks it against the row's (the rebuild check).

Config-first: :class:`OodConfig` (``--config tools/configs/ood.yaml``; flags override). Rows are keyed by
(size, prior, seed, fig2a_config) and the hash of the settings, which include the Fig. 2a row's settings; a
rerun skips rows already there. The report (``OUT_DIR/ood.md``, ``ood.png``: AUROC against N per arm) gives mean
± std over seeds per arm and size for each metric and the paired difference (per data-split seed) of the deep
weight prior against the standard normal; interpretation comes only from the config's ``notes`` and
``OUT_DIR/ood.notes.md``.

Usage (from the repository root)::

    DWP_HUB_DATA=../shared/data python -m tools.fig2a --config tools/configs/fig2a-ood.yaml   # the posteriors
    DWP_HUB_DATA=../shared/data python -m tools.ood --config tools/configs/ood.yaml
    python tools/ood.py --config tools/configs/ood.yaml --report-only
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/ood.py): register the tools package
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools import fig2a
from tools._experiment import (
    GRID,
    RANDOM_SPEC,
    REPO,
    RUN,
    ConfigError,
    ExperimentConfig,
    ResultFile,
    command_line,
    config_hash,
    mean_std,
    notes_section,
    parse_device,
    parse_ints,
    parse_kernel_specs,
    parse_seeds,
    random_priors,
    run_jobs,
    setting,
)

#: Image indices of both 10k files that are scored: the test half of the MNIST-10k protocol.
FIRST_IMAGE, END_IMAGE = 5000, 10_000
OOD_DATASETS = ("notmnist",)
#: Metrics of a row: (column, label, higher is better).
METRICS = (("acc", "in-distribution accuracy", True), ("nll", "in-distribution NLL (nats)", False),
           ("ece", "in-distribution ECE", False), ("auroc_entropy", "AUROC, predictive entropy", True),
           ("auroc_mi", "AUROC, mutual information", True))
FIELDS = ("size", "prior", "seed", "fig2a_config", "dwp_priors", "acc", "acc_mean", "fig2a_acc_mean", "nll", "ece",
          "brier", "auroc_entropy", "auroc_mi", "entropy_in", "entropy_ood", "mi_in", "mi_ood", "samples", "n_in",
          "n_ood", "in_images", "ood_images", "posterior", "seconds", "threads", "device", "torch", "finished")
KEY = ("size", "prior", "seed", "fig2a_config")
#: The paired comparison of the report: (arm, baseline).
PAIRED = ("dwp", "standard-normal")


def _optional(parse: Any) -> Any:
    def read(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "all")):
            return None
        return parse(value)

    return read


@dataclasses.dataclass(frozen=True)
class OodConfig(ExperimentConfig):
    """Out-of-distribution benchmark: the Fig. 2a posteriors on MNIST (in) against notMNIST (out)."""

    NAME = "ood"

    sizes: tuple[int, ...] | None = setting(None, "training-set sizes N to score (default: every kept posterior)",
                                            role=GRID, parse=_optional(parse_ints))
    priors: tuple[str, ...] | None = setting(None, f"arms to score, a subset of {','.join(fig2a.PRIORS)} (default: "
                                                   "all)", role=GRID, parse=_optional(fig2a._arms))
    seeds: tuple[int, ...] | None = setting(None, "data-split seeds to score: 0-4, 0,3 or 3 (default: all)",
                                            role=GRID, parse=_optional(parse_seeds))
    samples: int = setting(10, "MC passes of the predictive distribution (dwp_hub.inference.predict)")
    mc_seed: int = setting(0, "seed of the generator of the MC passes (the same for every run)")
    n_images: int = setting(END_IMAGE - FIRST_IMAGE, "images of each set: the first N of MNIST-10k images 5000-9999 "
                                                     "(in) and of the OOD file's images 5000-9999 (out)")
    ood_dataset: str = setting("notmnist", "out-of-distribution images", choices=OOD_DATASETS)
    ece_bins: int = setting(15, "equal-width confidence bins of the ECE")
    batch_size: int = setting(500, "images per forward pass (the MC noise follows the batches)")
    fig2a_csv: Path = setting(REPO / "docs" / "results" / "fig2a-ood" / "fig2a.csv",
                              "the Fig. 2a CSV whose runs are scored (tools/configs/fig2a-ood.yaml writes it)",
                              role=RUN)
    posterior_dir: Path = setting(REPO / "runs" / "fig2a-ood" / "posteriors",
                                  "the posteriors fig2a kept for those rows (its POSTERIOR_DIR)", role=RUN)
    workers: int = setting(1, "parallel runs (processes)", role=RUN)
    threads: int = setting(0, "torch threads per run (0: cores // workers)", role=RUN)
    device: str = setting("cpu", "where each posterior is scored (cpu, cuda, cuda:N); workers share it; rows record "
                          "it", role=RUN, parse=parse_device)
    out_dir: Path = setting(REPO / "docs" / "results", "report folder", role=RUN)
    csv: Path | None = setting(None, "results CSV (default OUT_DIR/ood.csv)", role=RUN)

    @property
    def csv_path(self) -> Path:
        return self.csv or self.out_dir / "ood.csv"

    def validate(self) -> None:
        if not 1 <= self.n_images <= END_IMAGE - FIRST_IMAGE:
            raise ConfigError(f"ood: n_images must be in [1, {END_IMAGE - FIRST_IMAGE}], got {self.n_images}")
        if self.samples < 1 or self.batch_size < 1 or self.ece_bins < 1:
            raise ConfigError("ood: samples, batch_size and ece_bins must be >= 1")

    def row_settings(self, *, fig2a_settings: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        """This config's settings plus those of the Fig. 2a row whose posterior is scored."""
        return {**self.settings(), "fig2a": fig2a_settings or {}}

    def wants(self, size: int, prior: str, seed: int) -> bool:
        return ((self.sizes is None or size in self.sizes) and (self.priors is None or prior in self.priors)
                and (self.seeds is None or seed in self.seeds))


def result_file(path: Path) -> ResultFile:
    return ResultFile(path, FIELDS, KEY)


# -- AUROC ------------------------------------------------------------------------------------------------
def auroc(negatives: Any, positives: Any) -> float:
    """Area under the ROC curve of telling ``positives`` (higher scores) from ``negatives``: the probability that
    a random positive scores above a random negative, ties counting one half (the Mann-Whitney U statistic over
    ``len(positives) * len(negatives)``, from average ranks; O(n log n))."""
    import numpy as np

    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if not len(neg) or not len(pos):
        raise ValueError("AUROC needs at least one score of each class")
    if np.isnan(neg).any() or np.isnan(pos).any():
        raise ValueError("AUROC of NaN scores")
    _, inverse, counts = np.unique(np.concatenate([neg, pos]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based average rank of each score
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


# -- the runs ---------------------------------------------------------------------------------------------
def _sha_name(row: dict[str, str]) -> str:
    return f"{row['config_sha256']}-n{row['size']}-{row['prior']}-s{row['seed']}.safetensors"


def find_runs(cfg: OodConfig) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(the jobs: every row of the Fig. 2a CSV in the grid whose posterior is kept, the rows without one)."""
    jobs, missing = [], []
    for r in ResultFile.read(cfg.fig2a_csv):
        if not r.get("settings"):  # written before config hashing: no posterior names it
            continue
        size, prior, seed = int(r["size"]), r["prior"], int(r["seed"])
        if not cfg.wants(size, prior, seed):
            continue
        settings = json.loads(r["settings"])
        path = cfg.posterior_dir / fig2a.posterior_name(settings, size, prior, seed)
        if not path.is_file():
            missing.append(r)
            continue
        jobs.append({"size": size, "prior": prior, "seed": seed, "fig2a_config": r["config_sha256"],
                     "fig2a_settings": settings, "dwp_priors": r.get("dwp_priors") or "",
                     "fig2a_acc_mean": r.get("acc_mean", ""), "posterior": str(path)})
    return jobs, missing


def rebuild(row_settings: dict[str, Any], prior: str, seed: int, posterior: str | Path) -> Any:
    """The model of a Fig. 2a run, from its row's settings (arm, prior spec, bound, widths), with the kept
    posterior's state loaded. The posterior's record must name the same row (config hash, size, arm, seed)."""
    from dwp_hub.inference import load_checkpoint
    from dwp_hub.paper import PAPER_WIDTHS, paper_net

    record = fig2a.read_posterior_meta(posterior)
    sha = config_hash(row_settings)
    if record.get("config_sha256") != sha or record.get("prior") != prior or record.get("seed") != seed:
        raise ConfigError(f"{posterior} holds the run {record.get('config_sha256')}/{record.get('prior')}/seed "
                          f"{record.get('seed')}, not {sha}/{prior}/seed {seed}; it does not belong to this row.")
    paper_prior, _ = fig2a.ARMS[prior]
    spec = row_settings.get("dwp", "")
    table: dict[int, Any] | None = None
    if spec == RANDOM_SPEC:
        table = random_priors((7, 5))
    elif spec:
        table = parse_kernel_specs(spec)
    # the means' initialisation is overwritten by the loaded state: Xavier needs no prior
    model = paper_net(paper_prior, dwp_priors=table, widths=tuple(row_settings.get("widths", PAPER_WIDTHS)),
                      seed=seed, bound=row_settings.get("bound", "fast"),
                      kernels_per_step=row_settings.get("kernels_per_step"), init="xavier")
    load_checkpoint(posterior, model)
    return model


def images(dataset: str, n: int) -> tuple[Any, Any]:
    """Images ``FIRST_IMAGE`` .. ``FIRST_IMAGE + n - 1`` of a 10k file (tensors)."""
    import torch

    from dwp_hub.data import load_idx_dataset

    x, y = load_idx_dataset(dataset)
    return torch.from_numpy(x[FIRST_IMAGE:FIRST_IMAGE + n]), torch.from_numpy(y[FIRST_IMAGE:FIRST_IMAGE + n])


def score(job: dict[str, Any]) -> dict[str, Any]:
    """Rebuild one run's model and score it; returns the CSV row."""
    import torch

    from dwp_hub.inference import bayesian_layers, classification_metrics, predict, predict_proba

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    start = time.perf_counter()
    model = rebuild(job["fig2a_settings"], job["prior"], job["seed"], job["posterior"]).to(job.get("device") or "cpu")
    dev = next(model.parameters()).device
    x_in, y_in = images("mnist", job["n_images"])
    x_out, _ = images(job["ood_dataset"], job["n_images"])
    gen = torch.Generator().manual_seed(job["mc_seed"])
    # local reparameterisation: the committed table was scored with it (predict's default until session 11)
    p_in = predict(model, x_in, job["samples"], batch_size=job["batch_size"], generator=gen, sampling="local")
    p_out = predict(model, x_out, job["samples"], batch_size=job["batch_size"], generator=gen, sampling="local")
    m = classification_metrics(p_in.probs, y_in, job["ece_bins"])
    bayesian = bool(bayesian_layers(model))
    # the mean weights, exactly as fig2a's evaluate computed its acc_mean (the rebuild check)
    acc_mean = float((predict_proba(model, x_in.to(dev), 0).argmax(1).cpu() == y_in).float().mean())
    last = FIRST_IMAGE + job["n_images"] - 1
    return {
        "size": job["size"], "prior": job["prior"], "seed": job["seed"], "fig2a_config": job["fig2a_config"],
        "dwp_priors": job["dwp_priors"], "acc": round(m["accuracy"], 4), "acc_mean": round(acc_mean, 4),
        "fig2a_acc_mean": job["fig2a_acc_mean"], "nll": round(m["nll"], 4), "ece": round(m["ece"], 4),
        "brier": round(m["brier"], 4), "auroc_entropy": round(auroc(p_in.entropy, p_out.entropy), 4),
        "auroc_mi": round(auroc(p_in.mutual_information, p_out.mutual_information), 4) if bayesian else "",
        "entropy_in": round(float(p_in.entropy.mean()), 4), "entropy_ood": round(float(p_out.entropy.mean()), 4),
        "mi_in": round(float(p_in.mutual_information.mean()), 5) if bayesian else "",
        "mi_ood": round(float(p_out.mutual_information.mean()), 5) if bayesian else "",
        "samples": job["samples"] if bayesian else 1, "n_in": len(x_in), "n_ood": len(x_out),
        "in_images": f"mnist {FIRST_IMAGE}-{last}", "ood_images": f"{job['ood_dataset']} {FIRST_IMAGE}-{last}",
        "posterior": Path(job["posterior"]).name, "seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(), "device": str(dev), "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# -- the report -------------------------------------------------------------------------------------------
def _arm(r: dict[str, str]) -> tuple[str, str]:
    return fig2a._arm(r)


def _values(rows: Sequence[dict[str, str]], arm: tuple[str, str], n: int, metric: str) -> dict[str, float]:
    """``{seed: value}`` of ``metric`` for ``arm`` at size ``n`` (rows with the metric only)."""
    return {r["seed"]: float(r[metric]) for r in rows if _arm(r) == arm and int(r["size"]) == n and r.get(metric)}


def _cell(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "-"
    mu, sd = mean_std(values)
    return f"{mu:.{digits}f} ± {sd:.{digits}f} ({len(values)})"


def verdict(diffs: Sequence[float], higher_is_better: bool) -> str:
    """``better`` / ``worse`` when the mean paired difference exceeds its standard deviation over seeds (the rule
    of the Fig. 2a targets) in the metric's good / bad direction, else ``within seed noise``."""
    if len(diffs) < 2:
        return "too few seeds"
    mu, sd = mean_std(diffs)
    if abs(mu) <= sd:
        return "within seed noise"
    return "better" if (mu > 0) == higher_is_better else "worse"


def _where(better: list[int], worse: list[int]) -> str:
    """"better at N = 50, 100; worse at N = 500", naming only the verdicts that occur."""
    parts = [f"{v} at N = {', '.join(map(str, ns))}" for v, ns in (("better", better), ("worse", worse)) if ns]
    return "; ".join(parts) or "within seed noise at every size"


def write_report(rows: list[dict[str, str]], out_dir: Path, command: str, *, missing: int = 0,
                 notes: Sequence[str] = (), stem: str = "ood") -> tuple[Path, Path]:
    """Markdown tables (mean ± std over seeds per arm and size for each metric; the paired difference of the deep
    weight prior against the standard normal) and the AUROC plot, from the CSV rows."""
    sizes = sorted({int(r["size"]) for r in rows})
    specs = list(dict.fromkeys(_arm(r)[1] for r in rows if fig2a.uses_dwp(r["prior"])))
    multi = len(specs) > 1
    arms = sorted(dict.fromkeys(_arm(r) for r in rows), key=lambda a: (fig2a.PRIORS.index(a[0]), specs.index(a[1])
                                                                       if a[1] in specs else -1))
    label = {a: f"{fig2a.LABELS[a[0]]} [{a[1]}]" if multi and a[1] else fig2a.LABELS[a[0]] for a in arms}
    samples = sorted({r["samples"] for r in rows if r["prior"] != "deterministic"})
    ranges = sorted({(r["in_images"], r["ood_images"]) for r in rows})
    lines = [
        "# Out-of-distribution benchmark: MNIST (in) against notMNIST (out), Fig. 2a posteriors",
        "",
        ("Commands (each added rows to the CSV): `" if "`; `" in command else "Command: `") + command + "`",
        "",
        (f"Runs: {len(rows)} Fig. 2a runs (MNIST-10k test protocol: N stratified training images from images 0-4999), "
         "each rebuilt from its kept posterior and its row's settings and scored with "
         f"`dwp_hub.inference.predict` ({', '.join(samples) or '-'} MC passes with local reparameterisation, "
         "`sampling=\"local\"`; the deterministic net: one pass). "
         "Images: " + "; ".join(f"in-distribution {a}, out-of-distribution {b}" for a, b in ranges) + ". "
         "AUROC: OOD images the positive class, scored by the predictive entropy or by the mutual information "
         "(n/a for the deterministic net, which has no weight uncertainty). ECE: top-label, equal-width bins."),
        "",
        "Mean ± std over data-split seeds (number of seeds in brackets).",
    ]
    if missing:
        lines += ["", f"{missing} row(s) of the Fig. 2a CSV in the grid have no kept posterior and are not scored."]
    for metric, name, higher in METRICS:
        lines += ["", f"## {name} ({'higher' if higher else 'lower'} is better)", "",
                  "| arm | " + " | ".join(f"N={n}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        for a in arms:
            if metric == "auroc_mi" and a[0] == "deterministic":
                lines.append(f"| {label[a]} | " + " | ".join("n/a" for _ in sizes) + " |")
                continue
            lines.append(f"| {label[a]} | " + " | ".join(_cell(list(_values(rows, a, n, metric).values()))
                                                         for n in sizes) + " |")
    arm, base = PAIRED
    pairs = [(a, (base, "")) for a in arms if a[0] == arm and (base, "") in arms]
    if pairs:
        lines += ["", f"## Paired difference: {fig2a.LABELS[arm]} − {fig2a.LABELS[base]}", "",
                  ("Per data-split seed (same training images), mean ± std over the seeds both arms ran (number in "
                   "brackets). Verdict: better / worse when the mean difference exceeds its standard deviation in "
                   "the metric's good / bad direction, else within seed noise."), ""]
        for a, b in pairs:
            title = f" [{a[1]}]" if multi else ""
            lines += [f"| metric{title} | " + " | ".join(f"N={n}" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
            summary = []
            for metric, name, higher in METRICS:
                cells, where = [], {"better": [], "worse": []}
                for n in sizes:
                    pa, pb = _values(rows, a, n, metric), _values(rows, b, n, metric)
                    diffs = [pa[s] - pb[s] for s in sorted(set(pa) & set(pb), key=int)]
                    if not diffs:
                        cells.append("-")
                        continue
                    v = verdict(diffs, higher)
                    where.setdefault(v, []).append(n)
                    mu, sd = mean_std(diffs)
                    cells.append(f"{mu:+.3f} ± {sd:.3f} ({len(diffs)}): {v}")
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
                summary.append(f"- {name}: {_where(where['better'], where['worse'])}.")
            lines += ["", f"Where the deep weight prior{title} differs from the standard normal beyond seed noise:",
                      "", *summary, ""]
    checked = [r for r in rows if r.get("fig2a_acc_mean") and r.get("n_in") == str(END_IMAGE - FIRST_IMAGE)]
    if checked:
        bad = [r for r in checked if abs(float(r["acc_mean"]) - float(r["fig2a_acc_mean"])) > 1e-4]
        lines += ["", "## Rebuild check", "",
                  f"Mean-weights accuracy of the rebuilt model equals the Fig. 2a row's in {len(checked) - len(bad)} "
                  f"of {len(checked)} runs" + (": " + "; ".join(f"N={r['size']} {r['prior']} seed {r['seed']}: "
                                                                  f"{r['acc_mean']} vs {r['fig2a_acc_mean']}"
                                                                  for r in bad) if bad else "") + "."]
    lines += notes_section(notes, out_dir, stem)
    if rows:
        lines += ["", f"Scoring time: {sum(float(r['seconds']) for r in rows) / 60:.1f} min in all."]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"dwp": "C3", "log-uniform": "C0", "standard-normal": "C2", "deterministic": "C7", "sn-dwp-init": "C1",
              "dwp-xavier-init": "C4", "sparse-log-uniform": "C9"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, (metric, name, _) in zip(axes, [m for m in METRICS if m[0].startswith("auroc")]):
        for i, a in enumerate(arms):
            if metric == "auroc_mi" and a[0] == "deterministic":
                continue
            xs = [n for n in sizes if _values(rows, a, n, metric)]
            stats = [mean_std(list(_values(rows, a, n, metric).values())) for n in xs]
            if xs:
                ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                            color=colors.get(a[0], f"C{i % 10}") if not (multi and a[1]) else f"C{(i + 3) % 10}",
                            label=label[a])
        ax.set_xscale("log")
        if sizes:
            ax.set_xticks(sizes)
            ax.set_xticklabels([str(s) for s in sizes])
        ax.set_xlabel("training examples N")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("AUROC, MNIST vs notMNIST")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    png = out_dir / f"{stem}.png"
    fig.savefig(png, dpi=130)
    plt.close(fig)
    return md, png


# -- main -------------------------------------------------------------------------------------------------
def jobs(cfg: OodConfig, results: ResultFile) -> tuple[list[dict[str, Any]], int, int]:
    """(the runs still to score, how many kept posteriors there are, how many unscored rows lack one)."""
    found, missing = find_runs(cfg)
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    todo = []
    for j in found:
        j["settings"] = cfg.row_settings(fig2a_settings=j["fig2a_settings"])
        if results.has(j["settings"], size=j["size"], prior=j["prior"], seed=j["seed"], fig2a_config=j["fig2a_config"]):
            continue
        todo.append({**j, "threads": threads, "samples": cfg.samples, "mc_seed": cfg.mc_seed,
                     "n_images": cfg.n_images, "ood_dataset": cfg.ood_dataset, "ece_bins": cfg.ece_bins,
                     "batch_size": cfg.batch_size, "device": cfg.device})
    unscored = [r for r in missing if not results.has(
        cfg.row_settings(fig2a_settings=json.loads(r["settings"])), size=int(r["size"]), prior=r["prior"],
        seed=int(r["seed"]), fig2a_config=r["config_sha256"])]  # a row scored before its posterior was lost is done
    return todo, len(found), len(unscored)


def made_with(row: dict[str, str], cfg: OodConfig) -> bool:
    """Whether an OOD row was scored with ``cfg``'s settings (whatever Fig. 2a settings its posterior had)."""
    settings = json.loads(row.get("settings") or "{}")
    settings.pop("fig2a", None)
    return settings == cfg.settings()


def main(argv: list[str] | None = None) -> int:
    def extra(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--report-only", action="store_true", help="only rewrite the report from the CSV")

    cfg, ns = OodConfig.from_args(argv, __doc__.split("\n\n")[0], extra)
    assert isinstance(cfg, OodConfig)
    command = command_line("ood", [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"])
    results = result_file(cfg.csv_path)
    todo, found, missing = jobs(cfg, results)
    if not ns.report_only:
        print(f"{len(todo)} run(s) to score ({found} kept posterior(s) in {cfg.posterior_dir} for the rows of "
              f"{cfg.fig2a_csv}, {missing} row(s) without one; {len(results.rows)} row(s) already in "
              f"{cfg.csv_path}; config {cfg.sha256()})", flush=True)
        if todo:
            results.record(command)
        settings = {(j["size"], j["prior"], j["seed"], j["fig2a_config"]): j["settings"] for j in todo}

        def report(row: dict[str, Any]) -> None:
            results.add([row], settings[(row["size"], row["prior"], row["seed"], row["fig2a_config"])])
            mi = f", MI {row['auroc_mi']:.3f}" if row["auroc_mi"] != "" else ""
            print(f"  N={row['size']:<5} {row['prior']:<16} seed {row['seed']}: acc {row['acc']:.4f}, ECE "
                  f"{row['ece']:.3f}, AUROC entropy {row['auroc_entropy']:.3f}{mi} ({row['seconds']:.0f} s)",
                  flush=True)

        run_jobs(todo, score, report, cfg.workers)
    rows = [r for r in results.rows if made_with(r, cfg) and cfg.wants(int(r["size"]), r["prior"], int(r["seed"]))]
    if not rows:
        print(f"No rows of this config's settings (and grid) in {cfg.csv_path}.")
        return 1 if ns.report_only else 0
    made_by = "`; `".join(results.commands()) or command
    md, png = write_report(rows, cfg.out_dir, made_by, missing=missing, notes=cfg.notes)
    print(f"wrote {cfg.csv_path}, {md}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
