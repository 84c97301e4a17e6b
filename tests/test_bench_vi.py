"""tools/bench_vi.py: its config builds at its defaults, and where bfloat16 is native its bf16 rows (the
standard-normal and fast-DWP steps under VIRecipe(precision="bf16"), the fraction of an in-run bf16 GEMM, the
bf16/fp32 step-time ratios) are measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tools_package  # noqa: F401 - makes `import tools` work

from dwp_hub.inference import vi as vi_module
from tools import bench_vi


def test_config_defaults_and_row_names() -> None:
    cfg = bench_vi.BenchViConfig()
    assert cfg.also_m == () and not cfg.no_bf16
    assert bench_vi.BenchViConfig.from_args(["--also-m", "16,64", "--no-bf16"])[0].also_m == (16, 64)
    assert bench_vi._split_name("dwp-fast-m16", 32) == ("dwp-fast", 16, "fp32")
    assert bench_vi._split_name("dwp-fast-bf16", 32) == ("dwp-fast", 32, "bf16")
    assert bench_vi._split_name("standard-normal-bf16", 32) == ("standard-normal", 32, "bf16")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(not vi_module.bf16_supported("cpu"), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_bf16_rows_where_bf16_is_native(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    argv = ["--rounds", "2", "--steps", "1", "--priors", "random", "--no-memory", "--threads", "1", "--json", str(out)]
    assert bench_vi.main(argv) == 0
    res = json.loads(out.read_text())
    assert {"standard-normal-bf16", "dwp-fast-bf16"} <= set(res["configs"])
    for name in ("standard-normal-bf16", "dwp-fast-bf16"):
        assert res["configs"][name]["ratio_to_fp32"] == pytest.approx(
            res["configs"][name]["cpu_ms_median"] / res["configs"][name.removesuffix("-bf16")]["cpu_ms_median"])
    bf16 = res["bf16"]
    assert bf16["sn_step_gflop"] == pytest.approx(res["sn_step_gflop"], rel=0.05)  # the same work
    assert 0 < bf16["sn_gemm_bf16_fraction"] and bf16["gemm_bf16_gflops_per_s"] > 0
    assert set(bf16["bf16_over_fp32"]) == {"standard-normal", "dwp-fast"}
    assert "bf16 1024x1024 torch.mm in the same run" in capsys.readouterr().out
