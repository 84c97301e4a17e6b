"""Issue 13.4: Fig. 2a keeps each run's posterior (and resumes around it); tools/ood.py rebuilds the posteriors,
scores them in- and out-of-distribution (AUROC of entropy and mutual information, ECE, NLL) and reports."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tools_package  # noqa: F401 - registers the tools package
import torch
from torch import nn

from tools import _experiment as E
from tools import fig2a, ood

REPO = Path(__file__).resolve().parents[1]


# -- AUROC --------------------------------------------------------------------------------------------------
def _pairwise(neg: np.ndarray, pos: np.ndarray) -> float:
    """The definition, by brute force: P(pos > neg) + P(pos == neg) / 2 over every pair."""
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(6))
def test_auroc_equals_the_pairwise_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_neg, n_pos = rng.integers(1, 40, size=2)
    if seed % 2:  # many ties
        neg, pos = rng.integers(0, 4, n_neg).astype(float), rng.integers(1, 5, n_pos).astype(float)
    else:
        neg, pos = rng.normal(0, 1, n_neg), rng.normal(0.5, 1, n_pos)
    assert ood.auroc(neg, pos) == pytest.approx(_pairwise(neg, pos), abs=1e-12)


def test_auroc_edges_and_torch_inputs() -> None:
    assert ood.auroc([0, 1, 2], [3, 4]) == 1.0 and ood.auroc([3, 4], [0, 1, 2]) == 0.0
    assert ood.auroc(torch.zeros(5), torch.zeros(3)) == 0.5  # all tied: chance
    assert ood.auroc(torch.tensor([0.1, 0.4]), torch.tensor([0.3, 0.5])) == 0.75
    with pytest.raises(ValueError):
        ood.auroc([], [1.0])
    with pytest.raises(ValueError):
        ood.auroc([float("nan")], [1.0])


def test_auroc_agrees_with_torchmetrics() -> None:
    tm = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(0)
    neg, pos = torch.rand(300, generator=g), torch.rand(200, generator=g) + 0.2
    neg[:50] = pos[:50]  # ties across the classes
    ref = tm.binary_auroc(torch.cat([neg, pos]), torch.cat([torch.zeros(300), torch.ones(200)]).long())
    assert ood.auroc(neg, pos) == pytest.approx(float(ref), abs=1e-6)


# -- configs ------------------------------------------------------------------------------------------------
def test_configs_load_and_widths_keep_old_row_hashes() -> None:
    cfg = ood.OodConfig.from_yaml(REPO / "tools" / "configs" / "ood.yaml")
    assert cfg.samples == 10 and cfg.n_images == 5000 and cfg.ood_dataset == "notmnist" and cfg.workers == 2
    camp = fig2a.Fig2aConfig.from_yaml(REPO / "tools" / "configs" / "fig2a-ood.yaml")
    assert camp.keep_posteriors and camp.posteriors == Path("runs/fig2a-ood/posteriors")
    assert camp.priors == fig2a.DEFAULT_PRIORS and camp.seeds == (0, 1, 2, 3, 4) and camp.sizes == fig2a.SIZES
    assert Path(cfg.fig2a_csv) == Path(camp.out_dir) / "fig2a.csv" and Path(cfg.posterior_dir) == camp.posteriors
    assert Path(camp.scored_csv) == Path(cfg.out_dir) / "ood.csv"  # the campaign resumes from the scored rows
    # the paper's widths add nothing to a row's settings (rows written before the option keep their hashes)
    assert "widths" not in fig2a.Fig2aConfig().row_settings(size=50, prior="dwp")
    assert fig2a.Fig2aConfig(widths="2,4").row_settings(size=50, prior="dwp")["widths"] == [2, 4]
    with pytest.raises(E.ConfigError):
        fig2a.Fig2aConfig(widths="2")
    with pytest.raises(E.ConfigError):
        ood.OodConfig(n_images=0)
    # grid fields default to every kept posterior; the OOD settings and the run's settings make a row's hash
    assert cfg.wants(50, "dwp", 3) and not cfg.replace(priors="dwp").wants(50, "deterministic", 0)
    assert cfg.row_settings(fig2a_settings={"a": 1}) != cfg.row_settings(fig2a_settings={"a": 2})
    assert cfg.replace(workers=1, threads=2, posterior_dir="/x").sha256() == cfg.sha256()
    assert cfg.replace(samples=20).sha256() != cfg.sha256()


def test_result_file_discard(tmp_path: Path) -> None:
    res = E.ResultFile(tmp_path / "r.csv", ("size", "seed", "acc"), ("size", "seed"))
    res.add([{"size": 50, "seed": 0, "acc": 0.5}, {"size": 50, "seed": 1, "acc": 0.6}], {"x": 1})
    assert res.discard({"x": 2}, size=50, seed=0) == 0  # other settings: another row
    assert res.discard({"x": 1}, size=50, seed=0) == 1 and len(res.find()) == 1
    res.add([{"size": 50, "seed": 0, "acc": 0.7}], {"x": 1})
    assert [r["acc"] for r in E.ResultFile.read(res.path)] == ["0.6", "0.7"]


# -- fig2a keeps posteriors; ood rebuilds and scores them (real data) ----------------------------------------
def _fig2a_argv(tmp_path: Path, priors: str = "dwp,standard-normal,deterministic") -> list[str]:
    return ["--sizes", "50", "--seeds", "0", "--priors", priors, "--steps", "2", "--batch", "50", "--eval-mc", "1",
            "--widths", "2,4", "--random-priors", "--threads", "1", "--keep-posteriors",
            "--out-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]


@pytest.mark.usefixtures("data_root")
def test_fig2a_keeps_posteriors_and_resumes_around_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _fig2a_argv(tmp_path)
    assert fig2a.main(argv) == 0
    assert "3 run(s) to do" in capsys.readouterr().out
    rows = E.ResultFile.read(tmp_path / "out" / "fig2a.csv")
    posts = tmp_path / "w" / "posteriors"
    names = sorted(p.name for p in posts.iterdir())
    assert names == sorted(fig2a.posterior_name(json.loads(r["settings"]), 50, r["prior"], 0) for r in rows)
    assert all(n.startswith(r["config_sha256"]) for r in rows for n in names if f"-{r['prior']}-" in n)
    assert not [p for p in (tmp_path / "w").iterdir() if p.is_file()]  # run checkpoints still removed
    meta = fig2a.read_posterior_meta(posts / names[0])
    assert meta["widths"] == [2, 4] and meta["row"]["prior"] in {"dwp", "standard-normal", "deterministic"}
    assert {r["device"] for r in rows} == {"cpu"}  # rows say where they ran

    assert fig2a.main(argv) == 0  # row and posterior there: nothing to do
    assert "0 run(s) to do" in capsys.readouterr().out

    sn = next(p for p in posts.iterdir() if "-standard-normal-" in p.name)
    sn.unlink()  # a row without its posterior: run again, the row replaced (not duplicated)
    assert fig2a.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 run(s) to do" in out and "1 of them rerun for the posterior" in out
    again = E.ResultFile.read(tmp_path / "out" / "fig2a.csv")
    assert len(again) == 3 and sn.is_file()
    assert sorted(r["prior"] for r in again) == sorted(r["prior"] for r in rows)

    path = tmp_path / "out" / "fig2a.csv"  # a posterior without its row (killed in between): the row comes back
    kept = [r for r in again if r["prior"] != "deterministic"]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(again[0]))
        writer.writeheader()
        writer.writerows(kept)
    assert fig2a.main(argv) == 0
    out = capsys.readouterr().out
    assert "0 run(s) to do" in out and "1 row(s) recovered" in out
    back = E.ResultFile.read(path)
    det = [r for r in back if r["prior"] == "deterministic"]
    assert len(back) == 3 and det and det[0]["acc_mean"] == next(r for r in again if r["prior"] == "deterministic")[
        "acc_mean"]

    assert fig2a.main([a for a in argv if a != "--keep-posteriors"]) == 0  # off: rows alone count
    assert "0 run(s) to do" in capsys.readouterr().out


@pytest.mark.usefixtures("data_root")
def test_ood_rebuilds_posteriors_reproduces_accuracy_and_resumes(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert fig2a.main(_fig2a_argv(tmp_path, "dwp,log-uniform,deterministic")) == 0
    fig_rows = {r["prior"]: r for r in E.ResultFile.read(tmp_path / "out" / "fig2a.csv")}
    argv = ["--fig2a-csv", str(tmp_path / "out" / "fig2a.csv"), "--posterior-dir", str(tmp_path / "w" / "posteriors"),
            "--out-dir", str(tmp_path / "ood"), "--samples", "2", "--workers", "1", "--threads", "1"]
    (tmp_path / "ood").mkdir()
    (tmp_path / "ood" / "ood.notes.md").write_text("A note from the notes file.\n")
    assert ood.main(argv) == 0
    assert "3 run(s) to score" in capsys.readouterr().out
    rows = {r["prior"]: r for r in E.ResultFile.read(tmp_path / "ood" / "ood.csv")}
    assert set(rows) == {"dwp", "log-uniform", "deterministic"}
    for prior, r in rows.items():  # the mean weights of the rebuilt model: exactly fig2a's accuracy
        assert r["acc_mean"] == fig_rows[prior]["acc_mean"] == r["fig2a_acc_mean"], prior
        assert r["fig2a_config"] == fig_rows[prior]["config_sha256"]
        assert r["n_in"] == r["n_ood"] == "5000" and r["in_images"] == "mnist 5000-9999"
        assert 0 <= float(r["auroc_entropy"]) <= 1 and 0 <= float(r["ece"]) <= 1 and float(r["nll"]) > 0
        assert json.loads(r["settings"])["fig2a"] == json.loads(fig_rows[prior]["settings"])
    assert rows["deterministic"]["auroc_mi"] == "" and rows["deterministic"]["samples"] == "1"
    assert {r["device"] for r in rows.values()} == {"cpu"}
    assert 0 <= float(rows["dwp"]["auroc_mi"]) <= 1
    # the deterministic arm: one softmax, so its ensemble accuracy is its mean-weights accuracy
    assert rows["deterministic"]["acc"] == rows["deterministic"]["acc_mean"]
    md = (tmp_path / "ood" / "ood.md").read_text()
    assert "3 of 3 runs" in md and "A note from the notes file." in md and (tmp_path / "ood" / "ood.png").is_file()

    assert ood.main(argv) == 0  # resume
    assert "0 run(s) to score" in capsys.readouterr().out
    assert ood.main([*argv, "--samples", "3", "--priors", "deterministic"]) == 0  # new settings: scored again
    assert "1 run(s) to score" in capsys.readouterr().out

    # posteriors are git-ignored and lost with the machine; runs the OOD CSV has scored stay done
    for p in (tmp_path / "w" / "posteriors").iterdir():
        p.unlink()
    assert ood.main([*argv, "--report-only"]) == 0  # scored rows whose posterior is gone are not reported unscored
    assert "no kept posterior" not in (tmp_path / "ood" / "ood.md").read_text()
    fig_argv = _fig2a_argv(tmp_path, "dwp,log-uniform,deterministic")
    assert fig2a.main([*fig_argv, "--scored-csv", str(tmp_path / "ood" / "ood.csv")]) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert fig2a.main(fig_argv) == 0  # without it, every run is redone for its posterior
    assert "3 run(s) to do" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["fig2a", "ood"])
@pytest.mark.parametrize("device", ["gpu0", "cuda:7", "xla"])
def test_device_flag_refuses_what_this_machine_lacks_as_a_usage_error(script: str, device: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    main = fig2a.main if script == "fig2a" else ood.main
    with pytest.raises(SystemExit) as exc:
        main(["--device", device, "--report-only"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert repr(device) in err and any(s in err for s in ("use cpu", "is not a device", "computes on cpu")), err


@pytest.mark.usefixtures("data_root")
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the --device cuda path of fig2a / ood)")
def test_fig2a_and_ood_train_and_score_on_cuda(tmp_path: Path) -> None:
    argv = [*_fig2a_argv(tmp_path, "dwp,standard-normal,deterministic"), "--device", "cuda"]
    assert fig2a.main(argv) == 0
    fig_rows = {r["prior"]: r for r in E.ResultFile.read(tmp_path / "out" / "fig2a.csv")}
    assert {r["device"] for r in fig_rows.values()} == {"cuda:0"}
    assert ood.main(["--fig2a-csv", str(tmp_path / "out" / "fig2a.csv"), "--posterior-dir",
                     str(tmp_path / "w" / "posteriors"), "--out-dir", str(tmp_path / "ood"), "--samples", "2",
                     "--threads", "1", "--device", "cuda"]) == 0
    rows = {r["prior"]: r for r in E.ResultFile.read(tmp_path / "ood" / "ood.csv")}
    assert {r["device"] for r in rows.values()} == {"cuda:0"} and set(rows) == set(fig_rows)
    for prior, r in rows.items():  # scored where it trained: the rebuilt mean weights give fig2a's accuracy
        assert abs(float(r["acc_mean"]) - float(fig_rows[prior]["acc_mean"])) <= 2e-4, prior


@pytest.mark.usefixtures("data_root")
def test_rebuild_refuses_a_posterior_of_another_row(tmp_path: Path) -> None:
    assert fig2a.main(_fig2a_argv(tmp_path, "standard-normal,deterministic")) == 0
    rows = {r["prior"]: r for r in E.ResultFile.read(tmp_path / "out" / "fig2a.csv")}
    posts = {p.name.split("-n50-")[1]: p for p in (tmp_path / "w" / "posteriors").iterdir()}
    settings = json.loads(rows["standard-normal"]["settings"])
    model = ood.rebuild(settings, "standard-normal", 0, posts["standard-normal-s0.safetensors"])
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(E.ConfigError, match="does not belong to this row"):
        ood.rebuild(settings, "standard-normal", 0, posts["deterministic-s0.safetensors"])


# -- the report ---------------------------------------------------------------------------------------------
def _rows() -> list[dict[str, str]]:
    rng = np.random.default_rng(0)
    out = []
    for n, prior, seed in itertools.product((50, 100), ("dwp", "standard-normal", "deterministic"), range(3)):
        bump = 0.05 if prior == "dwp" else 0.0
        out.append({"size": str(n), "prior": prior, "seed": str(seed),
                    "dwp_priors": "7=notmnist-7x7@1.2.0,5=notmnist-5x5@1.1.0" if prior == "dwp" else "",
                    "acc": f"{0.8 + rng.normal(0, 0.01):.4f}", "acc_mean": "0.8", "fig2a_acc_mean": "0.8",
                    "nll": f"{0.7 + rng.normal(0, 0.01):.4f}", "ece": f"{0.05 + rng.normal(0, 0.001):.4f}",
                    "auroc_entropy": f"{0.7 + bump + rng.normal(0, 0.005):.4f}",
                    "auroc_mi": "" if prior == "deterministic" else f"{0.6 + rng.normal(0, 0.01):.4f}",
                    "samples": "1" if prior == "deterministic" else "10", "n_in": "5000",
                    "in_images": "mnist 5000-9999", "ood_images": "notmnist 5000-9999", "seconds": "10"})
    return out


def test_report_renders_tables_paired_differences_plot_and_notes(tmp_path: Path) -> None:
    (tmp_path / "ood.notes.md").write_text("From the notes file.")
    md, png = ood.write_report(_rows(), tmp_path, "python tools/ood.py", missing=2, notes=("From the config.",))
    text = md.read_text()
    assert png.is_file() and png.stat().st_size > 1000
    for _, name, _ in ood.METRICS:
        assert f"## {name}" in text
    assert "| deterministic net + L2 | n/a | n/a |" in text  # no mutual information without weight uncertainty
    assert "| deep weight prior | " in text and "(3) |" in text
    assert "## Paired difference: deep weight prior − standard normal" in text
    assert "AUROC, predictive entropy: better at N = 50, 100." in text
    assert "2 row(s) of the Fig. 2a CSV" in text and "3 of 3 runs" not in text and "18 of 18 runs" in text
    notes = text.split("## Notes")[1]
    assert "- From the config." in notes and "From the notes file." in notes


def test_summary_names_only_the_verdicts_that_occur() -> None:
    assert ood._where([200, 500], []) == "better at N = 200, 500"
    assert ood._where([50], [500]) == "better at N = 50; worse at N = 500"
    assert ood._where([], [100]) == "worse at N = 100"
    assert ood._where([], []) == "within seed noise at every size"


def test_verdict_rule() -> None:
    assert ood.verdict([0.1, 0.12, 0.09], True) == "better"
    assert ood.verdict([0.1, 0.12, 0.09], False) == "worse"
    assert ood.verdict([0.1, -0.12, 0.05], True) == "within seed noise"
    assert ood.verdict([0.1], True) == "too few seeds"


@pytest.mark.parametrize("how", ["file", "module"])
def test_ood_runs_as_file_and_module(how: str) -> None:
    import os
    import subprocess
    import sys

    args = ["tools/ood.py", "--help"] if how == "file" else ["-m", "tools.ood", "--help"]
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout and "--posterior-dir" in proc.stdout and "--report-only" in proc.stdout


def test_score_tells_out_of_distribution_inputs_by_their_entropy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model confident on the in-distribution images and uniform on the OOD ones scores AUROC 1 (entropy higher
    out of distribution), and the OOD images come from the job's OOD dataset, the in-distribution from MNIST."""
    n = 40
    labels = torch.arange(n) % 10
    x_in = torch.zeros(n, 1, 28, 28)
    x_in.view(n, -1)[torch.arange(n), labels] = 1.0  # pixel `label` lit: the model reads the label off it
    x_out = torch.zeros(n, 1, 28, 28)  # nothing lit: all logits 0, a uniform prediction
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[torch.arange(10), torch.arange(10)] = 20.0
    asked: list[tuple[str, int]] = []

    def fake_images(dataset: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        asked.append((dataset, count))
        return (x_in, labels) if dataset == "mnist" else (x_out, torch.zeros(n, dtype=torch.long))

    monkeypatch.setattr(ood, "rebuild", lambda *args: net)
    monkeypatch.setattr(ood, "images", fake_images)
    job = {"threads": 0, "fig2a_settings": {}, "prior": "deterministic", "seed": 0, "posterior": "p.safetensors",
           "n_images": n, "ood_dataset": "notmnist", "mc_seed": 0, "samples": 4, "batch_size": 16, "ece_bins": 10,
           "size": 50, "fig2a_config": "x", "dwp_priors": "", "fig2a_acc_mean": 1.0}
    row = ood.score(job)
    assert asked == [("mnist", n), ("notmnist", n)]
    assert row["acc"] == 1.0 and row["auroc_entropy"] == 1.0 and row["auroc_mi"] == ""
    assert row["entropy_ood"] == pytest.approx(math.log(10), abs=1e-3) and row["entropy_in"] < 0.01
