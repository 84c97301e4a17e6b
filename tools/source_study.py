"""Source-recipe study (issue 11): which source-network recipe gives paper-quality kernels, judged by
kernel statistics, kernel-VAE fit, and the figure that matters, VI accuracy on MNIST at N=50/100.

Config-first: :class:`SourceStudyConfig`, read from ``tools/studies/source-study.yaml`` (``--config``), lists the
candidates and the shared settings; every CSV row is keyed by (arm, size, seed) and the hash of the settings that
produced it (the protocol and VI budget, and the arm's definition: a reference's prior, or a candidate's source
recipe with the harvest, VAE and fitting settings), and records the dwp-hub version and the git commit. Rows of
older CSVs (no ``settings`` column) match by (arm, size, seed), as they did. All stages resume: source nets are cached per recipe hash (the same cache ``dwp-hub build``
uses, so a chosen recipe's nets are reused by its build), kernel datasets, VAEs and per-candidate
statistics are files under ``--work-dir``, and VI rows are appended to the CSV as they finish.

Selection uses the VALIDATION protocol (the config's ``protocol``: training subsets from MNIST-10k images 0-2499,
accuracy on 2500-4999); the report says so. Interpretation comes from the config's ``notes`` and
``OUT_DIR/source_study.notes.md``.

Usage::

    DWP_HUB_DATA=../shared/data python tools/source_study.py --workers 2
    DWP_HUB_DATA=../shared/data python tools/source_study.py --candidates w64-paper-e60,w64-lr3e-3-e60 --workers 2
    python tools/source_study.py --report-only
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/source_study.py): register the tools package
    import _bootstrap  # noqa: F401

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tools._experiment import (
    GRID,
    REPO,
    RUN,
    ConfigError,
    ExperimentConfig,
    ResultFile,
    command_line,
    notes_section,
    parse_kernel_specs,
    parse_seeds,
    run_jobs,
    setting,
)

FIELDS = ("arm", "kind", "size", "seed", "steps", "batch", "acc_ensemble", "acc_mean", "seconds", "protocol",
          "priors", "config_sha256", "dwp_hub", "commit", "finished")
KEY = ("arm", "size", "seed")
PROTOCOLS = {"validation": "VALIDATION (training subsets from MNIST-10k images 0-2499, accuracy on images 2500-4999; "
                           "images 5000-9999 are not used)",
             "test": "TEST (training subsets from MNIST-10k images 0-4999, accuracy on images 5000-9999)"}


def _names(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(n.strip() for n in items if str(n).strip())


@dataclasses.dataclass(frozen=True)
class SourceStudyConfig(ExperimentConfig):
    """The source-recipe study: candidates (source-net recipes) and references, judged by VI on MNIST."""

    NAME = "source_study"
    DEFAULT_CONFIG = REPO / "tools" / "studies" / "source-study.yaml"

    name: str = setting("source-study", "the study's name", role=RUN, cli=False)
    protocol: str = setting("validation", "the MNIST-10k protocol of the VI runs", cli=False)
    vi: dict[str, Any] = setting(help="VI runs: sizes, seeds (seed syntax or a list), steps, batch", cli=False,
                                 factory=lambda: {"sizes": [50, 100], "seeds": [0, 1, 2], "steps": 400, "batch": 50})
    harvest: dict[Any, Any] = setting(help="harvest rule per kernel size", cli=False, factory=dict)
    vae: dict[Any, Any] = setting(help="kernel-VAE architecture per kernel size", cli=False, factory=dict)
    fit_steps: dict[Any, Any] = setting(help="VAE fitting steps per kernel size", cli=False, factory=dict)
    references: dict[str, Any] = setting(help="arms without source nets: {name: {prior, dwp}}", cli=False, factory=dict)
    candidates: dict[str, Any] = setting(help="source recipes: {name: {source: SourceRecipe}}", cli=False,
                                         factory=dict)
    only: tuple[str, ...] = setting((), "comma-separated subset of the candidates (default: all in the config)",
                                    flags=("--candidates",), role=GRID, parse=_names)
    no_references: bool = setting(False, "skip the reference arms", role=GRID)
    workers: int = setting(1, "parallel processes", role=RUN)
    work_dir: Path = setting(REPO / "runs" / "source-study", "source nets, kernels, VAEs", role=RUN)
    out_dir: Path = setting(REPO / "docs" / "results", "CSV and report", role=RUN)

    def validate(self) -> None:
        for name in ("harvest", "vae", "fit_steps"):  # YAML keys 7 and "7" alike
            object.__setattr__(self, name, {int(k): v for k, v in getattr(self, name).items()})
        vi = dict(self.vi)
        missing = {"sizes", "seeds", "steps", "batch"} - set(vi)
        if missing:
            raise ConfigError(f"{self.NAME}: vi needs {', '.join(sorted(missing))}.")
        vi["sizes"], vi["seeds"] = list(parse_seeds(vi["sizes"])), list(parse_seeds(vi["seeds"]))
        object.__setattr__(self, "vi", vi)
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"{self.NAME}: protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}.")
        unknown = sorted(set(self.only) - set(self.candidates))
        if unknown:
            raise ConfigError(f"Unknown candidates {unknown}; the config has {', '.join(self.candidates)}.")

    @property
    def selected(self) -> list[str]:
        return list(self.only) or list(self.candidates)

    def row_settings(self, *, arm: str, **_: Any) -> dict[str, Any]:
        """The protocol and VI budget, and the arm's definition (a candidate's with the harvest, VAE and fit)."""
        out: dict[str, Any] = {"experiment": self.NAME, "protocol": self.protocol, "steps": self.vi["steps"],
                               "batch": self.vi["batch"]}
        if arm in self.references:
            out["reference"] = self.references[arm]
        else:
            out.update(candidate=self.candidates[arm], harvest=self.harvest, vae=self.vae, fit_steps=self.fit_steps)
        return out


def result_file(path: Path) -> ResultFile:
    """The study's CSV; rows written before config hashing match by (arm, size, seed), as they did."""
    return ResultFile(path, FIELDS, KEY, legacy=lambda row, settings: True)


# -- kernel statistics ------------------------------------------------------------------------
def low_frequency_share(kernels: Any, radius: int = 1) -> float:
    """Share of the kernels' energy at spatial frequencies |fx|, |fy| <= ``radius`` (DC included) of the
    k-point DFT: about (2r+1)²/k² for white noise (0.18 for 7x7, 0.36 for 5x5), near 1 for smooth kernels."""
    import torch

    k = kernels.shape[-1]
    f = torch.fft.fft2(kernels.reshape(-1, k, k).double()).abs() ** 2
    idx = torch.arange(k)
    dist = torch.minimum(idx, k - idx)
    mask = (dist.view(-1, 1) <= radius) & (dist.view(1, -1) <= radius)
    return float(f[:, mask].sum() / f.sum().clamp_min(1e-30))


def mean_abs_cos(kernels: Any, limit: int = 2000) -> float:
    """Mean |cosine| between distinct kernels (diversity; about sqrt(2/(pi k²)) for Gaussian noise)."""
    v = kernels.reshape(len(kernels), -1)[:limit].double()
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = (v @ v.T).abs()
    n = len(v)
    return float((c.sum() - c.diagonal().sum()) / max(1, n * (n - 1)))


def kernel_stats(all_kernels: Any, kept: Any) -> dict[str, float]:
    import torch

    norms = all_kernels.flatten(1).norm(dim=1)
    kn = kept.flatten(1).norm(dim=1)
    q = torch.tensor([0.05, 0.5, 0.95])
    return {
        "n_all": len(all_kernels), "n_kept": len(kept), "frac_kept": round(len(kept) / max(1, len(all_kernels)), 4),
        **{f"all_norm_q{int(p * 100):02d}": round(float(v), 4) for p, v in zip(q, torch.quantile(norms, q))},
        **{f"kept_norm_q{int(p * 100):02d}": round(float(v), 4) for p, v in zip(q, torch.quantile(kn, q))},
        "kept_low_freq": round(low_frequency_share(kept), 4), "kept_abs_cos": round(mean_abs_cos(kept), 4),
    }


# -- stages -----------------------------------------------------------------------------------
def _source_recipe(cand: dict[str, Any]) -> Any:
    from dwp_hub.training.source import SourceRecipe

    return SourceRecipe.from_dict(cand["source"])


def train_nets(cfg: SourceStudyConfig, names: list[str], work: Path, workers: int) -> None:
    """Train every candidate's source nets (finished nets are kept; all candidates' nets in one pool)."""
    from dwp_hub.training.source import diverged, source_dir

    jobs = []
    for name in names:
        recipe = _source_recipe(cfg.candidates[name])
        sdir = source_dir(recipe, work)
        sdir.mkdir(parents=True, exist_ok=True)
        skip = {d["index"] for d in diverged(sdir)}
        jobs += [(recipe, i, str(sdir), 1, None) for i in range(recipe.n_nets)
                 if i not in skip and not (sdir / f"{recipe.dataset}-{recipe.net.arch}-{i:03d}.safetensors").exists()]
    print(f"source nets to train: {len(jobs)}", flush=True)
    if not jobs:
        return

    def report(done: tuple[tuple[Any, ...], tuple[str, float]]) -> None:
        j, (path, acc) = done
        print(f"  net {j[1]} of {Path(j[2]).name}: {'DIVERGED' if not path else f'val acc {acc:.3f}'}", flush=True)

    run_jobs(jobs, _train_net, report, workers, in_process=False)


def _train_net(job: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[str, float]]:
    """One source net (a job of :func:`train_nets`), returned with its job."""
    from dwp_hub.training.source import _worker

    return job, _worker(job)  # type: ignore[arg-type]


def candidate_dir(work: Path, name: str) -> Path:
    return work / "candidates" / name


def fit_candidate(cfg: SourceStudyConfig, name: str, work: Path) -> dict[str, Any]:
    """Harvest, kernel statistics and both VAE fits of one candidate (cached in its folder)."""
    import torch
    from safetensors.torch import save_file

    from dwp_hub.card import ArchConfig
    from dwp_hub.training.fit import FitRecipe, fit_vae
    from dwp_hub.training.harvest import HarvestSpec, PruneRule, harvest, read_checkpoint
    from dwp_hub.training.source import source_dir

    out = candidate_dir(work, name)
    summary_path = out / "summary.json"
    if summary_path.is_file():
        return json.loads(summary_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    recipe = _source_recipe(cfg.candidates[name])
    sdir = source_dir(recipe, work)
    paths = sorted(sdir.glob(f"{recipe.dataset}-{recipe.net.arch}-*.safetensors"))
    summary: dict[str, Any] = {"candidate": name, "source": recipe.to_dict(), "n_nets": len(paths),
                               "val_acc": round(statistics.mean(read_checkpoint(p)[1]["val_accuracy"] for p in paths), 4)}
    for ks in (7, 5):
        h = dict(cfg.harvest[ks])
        spec = HarvestSpec(layer=h["layer"], kernel_size=ks, prune=PruneRule(**h["prune"]), held_out=(len(paths) - 1,),
                           max_kernels_per_net=h.get("max_kernels_per_net"))
        data = harvest(paths, spec)
        everything = torch.cat([read_checkpoint(p)[0][h["layer"]].reshape(-1, 1, ks, ks) for p in paths])
        kept = torch.cat([data.train, data.held_out])
        stats = kernel_stats(everything, kept)
        save_file({"train": data.train.contiguous(), "held_out": data.held_out.contiguous()},
                  str(out / f"kernels{ks}.safetensors"))
        arch = ArchConfig(kernel_size=ks, **cfg.vae[ks])
        if len(data.train) < 16 or len(data.held_out) == 0:
            summary[str(ks)] = {**stats, "error": f"only {len(data.train)} training / {len(data.held_out)} held-out "
                                                  "kernels kept: too few to fit a VAE"}
            continue
        epochs = max(1, round(cfg.fit_steps[ks] / math.ceil(len(data.train) / 128)))
        result = fit_vae(data, arch, FitRecipe(epochs=epochs, iw_k=1000, iw_max_kernels=500), progress=False)
        save_file(result.vae.state_dict(), str(out / f"vae{ks}.safetensors"),
                  metadata={"arch": json.dumps({"kernel_size": ks, **cfg.vae[ks]})})
        summary[str(ks)] = {**stats, "fit_epochs": epochs, "fit_seconds": round(result.seconds, 1),
                            "heldout_elbo": result.metrics.heldout_elbo,
                            "heldout_iw": result.metrics.heldout_iw_log_likelihood,
                            "train_elbo": result.metrics.train_elbo}
        print(f"  {name} {ks}x{ks}: kept {stats['n_kept']}/{stats['n_all']}, median kept norm "
              f"{stats['kept_norm_q50']}, low-freq {stats['kept_low_freq']}, held-out ELBO "
              f"{result.metrics.heldout_elbo}", flush=True)
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def load_vae(path: Path) -> Any:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from dwp_hub.card import ArchConfig
    from dwp_hub.model.vae import KernelVAE

    with safe_open(str(path), "pt") as fh:
        arch = ArchConfig(**json.loads(fh.metadata()["arch"]))
    vae = KernelVAE(arch, init=False)
    vae.load_state_dict(load_file(str(path)))
    return vae.eval()


def run_vi(job: dict[str, Any]) -> dict[str, Any]:
    """One VI run on the study's protocol; returns the CSV row."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import VIRecipe, fit_vi
    from dwp_hub.paper import paper_net

    torch.set_num_threads(job["threads"])
    split = mnist10k_protocol(job["size"], job["seed"], protocol=job["protocol"])
    if job["kind"] == "candidate":
        folder = Path(job["folder"])
        priors: Any = {7: load_vae(folder / "vae7.safetensors"), 5: load_vae(folder / "vae5.safetensors")}
        prior = "dwp"
    else:
        prior = job["prior"]
        priors = parse_kernel_specs(job["dwp"]) if job.get("dwp") else None
    model = paper_net(prior, dwp_priors=priors, seed=job["seed"])
    epochs = max(1, round(job["steps"] / math.ceil(job["size"] / job["batch"])))
    res = fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=epochs, batch_size=job["batch"], seed=job["seed"]),
                 x_eval=split.x_eval, y_eval=split.y_eval, progress=False)
    return {"arm": job["arm"], "kind": job["kind"], "size": job["size"], "seed": job["seed"], "steps": res.steps,
            "batch": job["batch"], "acc_ensemble": round(res.metrics["acc_ensemble"], 4),
            "acc_mean": round(res.metrics["acc_mean"], 4), "seconds": round(res.seconds, 1), "protocol": split.protocol,
            "priors": job.get("dwp") or job.get("folder", ""), "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


def read_rows(path: Path) -> list[dict[str, str]]:
    return ResultFile.read(path)


# -- report -----------------------------------------------------------------------------------
def _acc(rows: list[dict[str, str]], arm: str, size: int) -> tuple[float, float, int, dict[int, float]]:
    by_seed = {int(r["seed"]): float(r["acc_ensemble"]) for r in rows if r["arm"] == arm and int(r["size"]) == size}
    v = list(by_seed.values())
    return (statistics.mean(v) if v else float("nan"), statistics.stdev(v) if len(v) > 1 else 0.0, len(v), by_seed)


def _paired(rows: list[dict[str, str]], arm: str, base: str, size: int) -> str:
    a, b = _acc(rows, arm, size)[3], _acc(rows, base, size)[3]
    common = sorted(set(a) & set(b))
    if not common:
        return "-"
    d = [a[s] - b[s] for s in common]
    return f"{statistics.mean(d):+.3f} ± {statistics.stdev(d) if len(d) > 1 else 0.0:.3f}"


def _harvest_note(cfg: SourceStudyConfig) -> str:
    parts = []
    for ks, h in sorted(cfg.harvest.items(), reverse=True):
        prune = h.get("prune", {})
        rule = f"L2 >= {prune['value']}" if prune.get("rule") == "min_norm" else json.dumps(prune)
        cap = f", at most {h['max_kernels_per_net']} per net" if h.get("max_kernels_per_net") else ""
        parts.append(f"{ks}x{ks} from `{h['layer']}` kept at {rule}{cap}")
    return "; ".join(parts)


def write_report(cfg: SourceStudyConfig, work: Path, rows: list[dict[str, str]], out: Path, commands: list[str],
                 config: str = "tools/studies/source-study.yaml") -> Path:
    sizes = cfg.vi["sizes"]
    summaries = {}
    for name in cfg.candidates:
        p = candidate_dir(work, name) / "summary.json"
        if p.is_file():
            summaries[name] = json.loads(p.read_text())
    protocol = next((r["protocol"] for r in rows), "")
    lines = [
        "# Source-recipe study: which source nets give paper-quality priors",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in commands) + f". Config: `{config}`.",
        "",
        (f"**Protocol of every accuracy here: {PROTOCOLS[cfg.protocol]}**; {cfg.vi['steps']} steps at batch "
         f"{cfg.vi['batch']}, MC ensemble of 10, seeds {', '.join(map(str, cfg.vi['seeds']))}. Source nets: the "
         f"candidates' recipes, the last net of each held out. Kernels: {_harvest_note(cfg)}."),
        "",
        "## Kernels",
        "",
        ("Norm quantiles are L2 norms (q05 / median / q95). Low-freq: share of the kept kernels' energy at spatial "
         "frequencies |f| <= 1 of the DFT (white noise: 0.18 for 7x7, 0.36 for 5x5). |cos|: mean |cosine| between kept "
         "kernels (lower is more diverse)."),
        "",
        ("| candidate | nets | val acc | 7x7 all norms | 7x7 kept | kept norms | low-freq | abs cos | ELBO / IW "
         "(held-out) | 5x5 kept | kept norms | low-freq | ELBO / IW |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        cells = [name, str(s["n_nets"]), f"{s['val_acc']:.3f}"]
        for ks in ("7", "5"):
            k = s[ks]
            if ks == "7":
                cells.append(f"{k['all_norm_q05']:.2f} / {k['all_norm_q50']:.2f} / {k['all_norm_q95']:.2f}")
            cells += [f"{k['n_kept']} ({k['frac_kept']:.1%})",
                      f"{k['kept_norm_q05']:.2f} / {k['kept_norm_q50']:.2f} / {k['kept_norm_q95']:.2f}",
                      f"{k['kept_low_freq']:.2f}"]
            if ks == "7":
                cells.append(f"{k['kept_abs_cos']:.2f}")
            cells.append(f"{k['heldout_elbo']:.1f} / {k['heldout_iw']:.1f}" if "heldout_elbo" in k else k.get("error", "-"))
        lines.append("| " + " | ".join(cells) + " |")
    arms = list(cfg.references) + [n for n in cfg.candidates if any(r["arm"] == n for r in rows)]
    lines += ["", "## VI on MNIST (validation protocol)", "",
              "Mean ± std over seeds (number of seeds); paired difference to the standard normal over the same seeds.",
              "", "| arm | " + " | ".join(f"N={n}" for n in sizes) + " | " +
              " | ".join(f"− standard normal, N={n}" for n in sizes) + " |",
              "|---|" + "---|" * (2 * len(sizes))]
    for arm in arms:
        cells = []
        for n in sizes:
            mu, sd, k, _ = _acc(rows, arm, n)
            cells.append(f"{mu:.3f} ± {sd:.3f} ({k})" if k else "-")
        cells += [_paired(rows, arm, "standard-normal", n) if arm != "standard-normal" else "" for n in sizes]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if protocol:
        lines += ["", f"Protocol string of the rows: `{protocol}` (and the same for N=100)."]
    lines += ["", "![kernels](source_study.png)", "",
              ("Picture: per candidate, 16 real kept 7x7 kernels (largest norm first), 16 decoder means of z ~ N(0, I) "
               "and 16 samples of the 7x7 prior, all on one shared diverging colour scale (colour bar).")]
    lines += notes_section(cfg.notes, out, "source_study")
    out.mkdir(parents=True, exist_ok=True)
    md = out / "source_study.md"
    md.write_text("\n".join(lines) + "\n")
    _picture(cfg, work, list(summaries), out / "source_study.png")
    return md


def _picture(cfg: SourceStudyConfig, work: Path, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from safetensors.torch import load_file

    rows, labels = [], []
    gen = torch.Generator().manual_seed(0)
    for name in names:
        folder = candidate_dir(work, name)
        if not (folder / "vae7.safetensors").is_file():
            continue
        k = load_file(str(folder / "kernels7.safetensors"))
        real = torch.cat([k["train"], k["held_out"]])
        real = real[real.flatten(1).norm(dim=1).argsort(descending=True)][:16]
        vae = load_vae(folder / "vae7.safetensors")
        with torch.no_grad():
            z = torch.randn(16, vae.cfg.z_dim, generator=gen)
            mu, var = vae.decoder(z)
            samples = mu + var.sqrt() * torch.randn(mu.shape, generator=gen)
        for what, t in (("real kept", real), ("decoder means", mu), ("samples", samples)):
            rows.append(t[:16, 0])
            labels.append(f"{name}: {what}")
    if not rows:
        return
    vmax = float(torch.quantile(torch.cat([r.flatten() for r in rows]).abs(), 0.995))
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 0.75 * len(rows) + 0.6), squeeze=False)
    for ax, r, lab in zip(axes[:, 0], rows, labels):
        pad = torch.full((7, 1), float("nan"))
        strip = torch.cat([torch.cat([x, pad], 1) for x in r], 1)
        im = ax.imshow(strip.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(lab, rotation=0, ha="right", va="center", fontsize=7)
    fig.colorbar(im, ax=axes[:, 0].tolist(), shrink=0.6, label="weight (shared scale)")
    fig.suptitle("7x7 kernels: real, decoder means, samples (one diverging scale)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    def extra(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--report-only", action="store_true", help="only rewrite the report from the CSV")

    cfg, ns = SourceStudyConfig.from_args(argv, "Source-recipe study for the notMNIST priors (issue 11).", extra)
    assert isinstance(cfg, SourceStudyConfig)
    config = os.path.relpath(ns.config, REPO) if Path(ns.config).resolve().is_relative_to(REPO) else str(ns.config)
    results = result_file(cfg.out_dir / "source_study.csv")
    command = command_line("source_study", argv)
    if not ns.report_only:
        results.record(command)
        vi = cfg.vi
        jobs = []
        if not cfg.no_references:
            jobs += [{"arm": arm, "kind": "reference", **ref, "size": n, "seed": s}
                     for arm, ref in cfg.references.items() for n in vi["sizes"] for s in vi["seeds"]]
        # references first (one pool), then candidates one by one: nets -> VAEs -> VI
        _run_jobs(cfg, results, jobs)
        for name in cfg.selected:
            print(f"== candidate {name}", flush=True)
            train_nets(cfg, [name], cfg.work_dir, cfg.workers)
            summary = fit_candidate(cfg, name, cfg.work_dir)
            if any("error" in summary[k] for k in ("7", "5")):
                print(f"  {name}: skipped VI ({summary['7'].get('error') or summary['5'].get('error')})", flush=True)
                continue
            folder = str(candidate_dir(cfg.work_dir, name))
            _run_jobs(cfg, results, [{"arm": name, "kind": "candidate", "folder": folder, "size": n, "seed": s}
                                     for n in vi["sizes"] for s in vi["seeds"]])
            write_report(cfg, cfg.work_dir, results.rows, cfg.out_dir, results.commands(), config)
    md = write_report(cfg, cfg.work_dir, results.rows, cfg.out_dir, results.commands(), config)
    print(md)
    return 0


def _run_jobs(cfg: SourceStudyConfig, results: ResultFile, jobs: list[dict[str, Any]]) -> None:
    """Run the jobs whose rows are not in ``results`` yet; rows are added as they finish."""
    todo = []
    for j in jobs:
        settings = cfg.row_settings(arm=j["arm"])
        if results.has(settings, arm=j["arm"], size=j["size"], seed=j["seed"]):
            continue
        todo.append({**j, "settings": settings, "protocol": cfg.protocol, "steps": cfg.vi["steps"],
                     "batch": cfg.vi["batch"], "threads": max(1, (os.cpu_count() or 1) // max(1, cfg.workers))})
    if not todo:
        return
    settings = {(j["arm"], j["size"], j["seed"]): j["settings"] for j in todo}

    def report(row: dict[str, Any]) -> None:
        results.add([row], settings[(row["arm"], row["size"], row["seed"])])
        print(f"  {row['arm']} N={row['size']} seed {row['seed']}: {row['acc_ensemble']:.4f} ({row['seconds']:.0f} s)",
              flush=True)

    run_jobs(todo, run_vi, report, cfg.workers, in_process=False)


if __name__ == "__main__":
    sys.exit(main())
