"""bf16 autocast in fit_vi: a str Enum option, refused where bf16 is not native, fp32 everything but
the forward pass, and steps that track the fp32 run (dwp_hub/inference/vi.py)."""

from __future__ import annotations

import pytest
import torch

from dwp_hub.errors import ConfigError
from dwp_hub.inference import Precision, VIRecipe, fit_vi, paper_net
from dwp_hub.inference import vi as vi_module

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_precision_is_a_checked_option_omitted_from_the_recipe_at_its_default() -> None:
    assert VIRecipe().precision == "fp32" and "precision" not in VIRecipe().to_dict()
    assert VIRecipe(precision=Precision.BF16).to_dict()["precision"] == "bf16"
    with pytest.raises(ConfigError, match="fp32, bf16"):
        VIRecipe(precision="fp16")


def test_bf16_is_refused_before_any_step_where_it_is_not_native(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vi_module, "bf16_supported", lambda device="cpu": False)
    x, y = _data()
    model = paper_net("standard-normal", widths=(2, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="native bfloat16.*precision='fp32'"):
        fit_vi(model, x, y, VIRecipe(epochs=2, batch_size=40, precision="bf16"), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.skipif(not vi_module.bf16_supported("cpu"), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
@pytest.mark.parametrize("prior", ["standard-normal", "log-uniform"])
def test_bf16_steps_track_fp32_and_keep_fp32_parameters(prior: str) -> None:
    x, y = _data()
    runs = {}
    for precision in ("fp32", "bf16"):
        model = paper_net(prior, widths=(4, 8), seed=0)
        res = fit_vi(model, x, y, VIRecipe(epochs=5, batch_size=40, seed=0, precision=precision), progress=False)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        runs[precision] = (res.final, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (f32, w32), (f16, w16) = runs["fp32"], runs["bf16"]
    assert f16["data"] != f32["data"]  # the forward pass really ran in bf16 ...
    assert f16["data"] == pytest.approx(f32["data"], rel=0.05)  # ... and tracks fp32
    assert f16["kl"] == pytest.approx(f32["kl"], rel=1e-3)  # KL terms stay fp32
    assert ((w16 - w32).norm() / w32.norm()).item() < 1e-2
