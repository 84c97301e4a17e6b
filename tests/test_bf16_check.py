"""tools/bf16_check.py: bf16 against fp32 VI training, paired per seed (issue 12). The committed config is the
validation the lead runs; here only its config, its report logic, its refusal without native bf16 and a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tools_package  # noqa: F401 - makes `import tools` work

from dwp_hub.inference import vi as vi_module
from tools import _experiment as E
from tools import bf16_check

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tools" / "configs" / "bf16-check.yaml"


def test_the_committed_config_is_the_validation_of_the_issue() -> None:
    cfg = bf16_check.Bf16CheckConfig.from_yaml(CONFIG)
    assert isinstance(cfg, bf16_check.Bf16CheckConfig)
    assert (cfg.sizes, cfg.seeds, cfg.priors, cfg.precisions) == ((50, 100), (0, 1, 2), ("standard-normal", "dwp"),
                                                                  ("fp32", "bf16"))
    assert (cfg.steps, cfg.batch, cfg.protocol, cfg.random_priors) == (400, 50, "validation", False)
    from dwp_hub.paper import PAPER_DWP

    assert E.parse_kernel_specs(cfg.dwp) == dict(PAPER_DWP)  # the shipped defaults
    assert cfg.epochs_for(50) == 400 and cfg.epochs_for(100) == 200  # 400 steps at batch 50 either way
    assert cfg == bf16_check.Bf16CheckConfig(workers=1, threads=1)  # the defaults are the validation too
    flags, _ = bf16_check.Bf16CheckConfig.from_args(["--config", str(CONFIG), "--seeds", "0", "--steps", "5"])
    assert flags.seeds == (0,) and flags.steps == 5 and flags.sha256() != cfg.sha256()


def test_jobs_pair_the_precisions_and_key_rows_without_them() -> None:
    cfg = bf16_check.Bf16CheckConfig(sizes=(50,), seeds=(0,), random_priors=True)
    jobs = bf16_check.jobs(cfg)
    assert [(j["prior"], j["precision"]) for j in jobs] == [("standard-normal", "fp32"), ("standard-normal", "bf16"),
                                                            ("dwp", "fp32"), ("dwp", "bf16")]
    assert jobs[0]["settings"] == jobs[1]["settings"] and "dwp" not in jobs[0]["settings"]
    assert jobs[2]["settings"]["dwp"] == E.RANDOM_SPEC and jobs[2]["settings"]["protocol"] == "validation"


def _row(size: int, prior: str, seed: int, precision: str, acc: float, ms: float = 50.0) -> dict[str, str]:
    return {"size": str(size), "prior": prior, "seed": str(seed), "precision": precision, "steps": "400",
            "batch": "50", "acc_ensemble": str(acc), "final_data": "1.0", "ms_per_step": str(ms), "seconds": "20",
            "dwp_priors": "" if prior != "dwp" else "7=a@1.0.0", "protocol": "MNIST-10k validation protocol: 50 "
            f"stratified from 0-2499 (seed {seed}), validate on 2500-4999", "torch": "2.x",
            "settings": json.dumps({"eval_mc": 10})}


def test_the_report_pairs_per_seed_and_checks_the_tolerance(tmp_path: Path) -> None:
    rows = []
    for seed, (f, b) in enumerate([(0.80, 0.79), (0.78, 0.785), (0.75, 0.745)]):
        rows += [_row(50, "standard-normal", seed, "fp32", f), _row(50, "standard-normal", seed, "bf16", b, 40.0)]
        rows += [_row(50, "dwp", seed, "fp32", f), _row(50, "dwp", seed, "bf16", b - 0.03)]
    rows.append(_row(50, "dwp", 7, "fp32", 0.5))  # no bf16 partner: not paired
    stats = {s["prior"]: s for s in bf16_check.summary(rows, 0.01)}
    assert stats["standard-normal"]["n"] == 3 and stats["standard-normal"]["within"]
    assert stats["standard-normal"]["diff"][0] == pytest.approx(-0.01 / 3, abs=1e-9)
    assert stats["standard-normal"]["ms_bf16"] / stats["standard-normal"]["ms_fp32"] == pytest.approx(0.8)
    assert stats["dwp"]["n"] == 3 and not stats["dwp"]["within"]
    cfg = bf16_check.Bf16CheckConfig(out_dir=tmp_path, notes=("a note",))
    text = bf16_check.write_report(rows, cfg, ["python tools/bf16_check.py"]).read_text()
    assert "| 50 | standard normal | 0.7767 ± 0.0252 | 0.7733 ± 0.0247 | -0.0033 ± 0.0076 (3) | -0.0100 |" in text
    assert "NOT within the tolerance: N=50 deep weight prior" in text and "- a note" in text
    assert "validate on 2500-4999" in text and "(seed" not in text.split("## Target")[0]


def test_refused_where_bf16_is_not_native(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vi_module, "bf16_supported", lambda device="cpu": False)
    with pytest.raises(SystemExit, match="no native bfloat16"):
        bf16_check.main(["--random-priors", "--out-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())


def test_runs_as_a_file() -> None:
    proc = subprocess.run([sys.executable, "tools/bf16_check.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)
    assert proc.returncode == 0 and "--config" in proc.stdout and "--tolerance" in proc.stdout, proc.stderr


@pytest.mark.usefixtures("data_root", "one_thread")
@pytest.mark.skipif(not vi_module.bf16_supported("cpu"), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_a_tiny_check_runs_pairs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--config", str(CONFIG), "--sizes", "50", "--seeds", "0", "--steps", "2", "--eval-mc", "1",
            "--random-priors", "--out-dir", str(tmp_path)]
    assert bf16_check.main(argv) == 0
    assert "4 run(s) to do" in capsys.readouterr().out
    rows: list[dict[str, Any]] = E.ResultFile.read(tmp_path / "bf16_check.csv")
    assert sorted((r["prior"], r["precision"]) for r in rows) == [("dwp", "bf16"), ("dwp", "fp32"),
                                                                  ("standard-normal", "bf16"),
                                                                  ("standard-normal", "fp32")]
    assert all(r["steps"] == "2" and "validation" in r["protocol"] and r["commit"] == E.git_commit() for r in rows)
    for prior in ("dwp", "standard-normal"):  # the bf16 row really ran in bf16: same seed, different arithmetic
        fp32, bf16 = (next(r for r in rows if (r["prior"], r["precision"]) == (prior, p)) for p in ("fp32", "bf16"))
        assert fp32["final_data"] != bf16["final_data"], prior
    text = (tmp_path / "bf16_check.md").read_text()
    assert "| 50 | standard normal |" in text and "| 50 | deep weight prior |" in text
    assert bf16_check.main(argv) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert len(E.ResultFile.read(tmp_path / "bf16_check.csv")) == 4
