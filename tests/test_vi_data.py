"""fit_vi on any data: DataLoaders, a Gaussian likelihood (regression), a device; the public data term."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dwp_hub.errors import ConfigError, TrainingError
from dwp_hub.inference import VIRecipe, data_term, fit_vi, paper_net, to_bayesian


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


def test_a_dataloader_trains_like_the_tensors() -> None:
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=40, shuffle=False)
    a = fit_vi(paper_net("standard-normal", widths=(2, 4)), x, y, VIRecipe(epochs=3, batch_size=40), progress=False)
    b = fit_vi(paper_net("standard-normal", widths=(2, 4)), loader, recipe=VIRecipe(epochs=3), x_eval=loader,
               progress=False)
    assert a.steps == b.steps == 3 and a.final == b.final
    assert 0.0 <= b.metrics["acc_ensemble"] <= 1.0
    with pytest.raises(TrainingError, match="inside the DataLoader"):
        fit_vi(paper_net("standard-normal", widths=(2, 4)), loader, y, VIRecipe(epochs=1), progress=False)


def test_gaussian_likelihood_regression_learns() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 8, 8, generator=g)
    y = x.mean((1, 2, 3)) * 4 - 2  # a smooth target
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 1), nn.Flatten(0))
    model = to_bayesian(net, "standard-normal")
    recipe = VIRecipe(epochs=150, batch_size=64, lr=1e-2, likelihood="gaussian", noise_std=0.1)
    res = fit_vi(model, x, y, recipe, x_eval=x, y_eval=y, progress=False)
    baseline = float(((y - y.mean()) ** 2).mean().sqrt())
    assert res.metrics["rmse_ensemble"] < 0.5 * baseline and res.metrics["rmse_mean"] < 0.5 * baseline
    assert math.isfinite(res.metrics["nll_ensemble"])
    with pytest.raises(ConfigError, match="likelihood"):
        VIRecipe(likelihood="poisson")


def test_data_term_is_n_times_the_batch_mean_nll() -> None:
    logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    assert data_term(logits, target, 100).item() == pytest.approx(100 * torch.nn.functional.cross_entropy(logits, target).item())
    pred, t = torch.zeros(4), torch.ones(4)
    expected = 10 * (0.5 * (1 / 0.25) + 0.5 * math.log(2 * math.pi * 0.25))
    assert data_term(pred, t, 10, "gaussian", noise_std=0.5).item() == pytest.approx(expected)


def test_device_argument_moves_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(20)
    recipe = VIRecipe(epochs=1, batch_size=20)
    torch.manual_seed(0)
    plain = fit_vi(paper_net("standard-normal", widths=(2, 4)), x, y, recipe, progress=False)
    torch.manual_seed(0)
    model = paper_net("standard-normal", widths=(2, 4))
    moved: list[tuple] = []
    real_to = nn.Module.to

    def to_spy(self: nn.Module, *args: object, **kwargs: object) -> nn.Module:
        if self is model:
            moved.append(args)
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "to", to_spy)
    res = fit_vi(model, x, y, recipe, progress=False, device="cpu")
    assert moved == [(torch.device("cpu"),)]  # the model is sent to the device before training
    assert res.steps == 1 and res.final == plain.final  # and trains exactly as without the argument


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_vi_on_cuda() -> None:  # pragma: no cover - runs where a GPU is present
    x, y = _data(20)
    model = paper_net("standard-normal", widths=(2, 4))
    res = fit_vi(model, x, y, VIRecipe(epochs=2, batch_size=20), x_eval=x, y_eval=y, progress=False, device="cuda")
    assert next(model.parameters()).is_cuda and 0.0 <= res.metrics["acc_ensemble"] <= 1.0
