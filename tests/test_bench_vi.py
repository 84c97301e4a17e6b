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
    for c, ratio in bf16["bf16_over_fp32"].items():  # bf16 over fp32, not the other way round
        assert ratio == pytest.approx(res["configs"][c + "-bf16"]["ratio_to_fp32"], rel=1e-6), c
    assert "bf16 1024x1024 torch.mm in the same run" in capsys.readouterr().out


@pytest.mark.usefixtures("one_thread")
@pytest.mark.skipif(not vi_module.bf16_supported("cpu"), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_timed_step_runs_its_convolutions_in_its_precision(precision: str) -> None:
    """The bench's bf16 step feeds bfloat16 to the convolutions (fit_vi's autocast), its fp32 step float32 only."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class ConvInputs(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.dtypes: set[torch.dtype] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.mkldnn_convolution):
                self.dtypes |= {a.dtype for a in args if isinstance(a, torch.Tensor)}
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(4, 1, 28, 28, generator=g), torch.randint(0, 10, (4,), generator=g)
    step = bench_vi._step_fn("standard-normal", {}, x, y, None, precision)
    with ConvInputs() as seen:
        step()
    assert seen.dtypes == ({torch.bfloat16} if precision == "bf16" else {torch.float32})
