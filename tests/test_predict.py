"""Predictive uncertainty (entropy, expected entropy, mutual information) and calibration metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from dwp_hub.errors import ConfigError
from dwp_hub.inference import BayesLinear, SamplingMode, paper_net, predict, sampling_mode
from dwp_hub.inference.predict import classification_metrics, expected_calibration_error, reliability_diagram


pytestmark = pytest.mark.usefixtures("one_thread")


def _model() -> torch.nn.Module:
    model = paper_net("standard-normal", widths=(2, 4), seed=0)
    for m in model.modules():
        if hasattr(m, "log_sigma2"):
            with torch.no_grad():
                m.log_sigma2.fill_(-1.0)  # visible weight noise
    return model


@pytest.mark.parametrize("sampling", ["weights", "local"])
def test_predict_matches_the_stacked_computation_and_is_reproducible(sampling: str) -> None:
    model = _model()
    x = torch.rand(30, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    pred = predict(model, x, samples=6, batch_size=7, generator=torch.Generator().manual_seed(1), sampling=sampling)
    assert pred.probs.shape == (30, 10) and pred.entropy.shape == pred.mutual_information.shape == (30,)
    assert torch.allclose(pred.probs.sum(1), torch.ones(30))
    assert (pred.mutual_information >= 0).all() and (pred.mutual_information > 1e-6).any()
    assert torch.allclose(pred.entropy - pred.expected_entropy, pred.mutual_information, atol=1e-6)
    again = predict(model, x, samples=6, batch_size=7, generator=torch.Generator().manual_seed(1), sampling=sampling)
    assert torch.equal(pred.probs, again.probs)
    # the same numbers from K stacked outputs (the definition), batch by batch with the same noise stream
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(1)))
    with torch.random.fork_rng(), torch.no_grad(), sampling_mode(model, sampling):
        torch.manual_seed(seed)
        model.eval()
        ps = [torch.stack([F.softmax(model(x[i:i + 7]), -1) for _ in range(6)]) for i in range(0, 30, 7)]
    stacked = torch.cat(ps, 1)  # [K, N, C]
    mean = stacked.mean(0)
    h = -torch.special.xlogy(mean, mean).sum(1)
    eh = -torch.special.xlogy(stacked, stacked).sum(2).mean(0)
    assert torch.allclose(pred.probs, mean, atol=1e-6) and torch.allclose(pred.entropy, h, atol=1e-5)
    assert torch.allclose(pred.expected_entropy, eh, atol=1e-5)


def test_weight_sampling_shares_one_draw_per_pass_and_has_the_local_moments() -> None:
    torch.manual_seed(0)
    layer = BayesLinear(3, 2)
    with torch.no_grad():
        layer.log_sigma2.fill_(-1.0)
    x = torch.tensor([[1.0, -2.0, 0.5], [1.0, -2.0, 0.5], [0.3, 0.0, 2.0]])
    with torch.no_grad():
        with sampling_mode(layer, "weights"):
            assert layer.sampling is SamplingMode.WEIGHTS
            out = layer(x)
            assert torch.equal(out[0], out[1])  # one weight draw for the whole batch
            draws = torch.stack([layer(x) for _ in range(4000)])
        assert layer.sampling is SamplingMode.LOCAL  # restored
        local = layer(x)
        assert not torch.equal(local[0], local[1])  # independent noise per example
        local_draws = torch.stack([layer(x) for _ in range(4000)])
    # both are draws of the same marginal per output: mean x·θ + b, variance x²·σ²
    with torch.no_grad():
        mean = x @ layer.weight.T + layer.bias
        var = (x * x) @ layer.sigma2.T
    for d in (draws, local_draws):
        assert torch.allclose(d.mean(0), mean, atol=4 * float(var.max().sqrt()) / 4000**0.5)
        assert torch.allclose(d.var(0), var, rtol=0.1)
    # and across examples the weight draws correlate the outputs exactly as q does
    cov01 = ((draws[:, 0, 0] - mean[0, 0]) * (draws[:, 2, 0] - mean[2, 0])).mean()
    assert abs(float(cov01) - float((x[0] * x[2] * layer.sigma2[0].detach()).sum())) < 0.1
    with pytest.raises(ConfigError, match="sampling"):
        with sampling_mode(layer, "flipout"):
            pass
    layer.sampling = "weights"  # a string is parsed on assignment
    assert layer.sampling is SamplingMode.WEIGHTS and "sampling=weights" in repr(layer)
    with pytest.raises(ConfigError, match="sampling"):
        layer.sampling = "flipout"


def test_predict_draws_weights_by_default_and_restores_each_layers_mode() -> None:
    model = _model()
    layers = [m for m in model.modules() if hasattr(m, "sampling")]
    layers[0].sampling = "weights"  # a mode set before the call is kept
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator
    default = predict(model, x, samples=3, batch_size=6, generator=gen().manual_seed(1))
    weights = predict(model, x, samples=3, batch_size=6, generator=gen().manual_seed(1), sampling="weights")
    local = predict(model, x, samples=3, batch_size=6, generator=gen().manual_seed(1), sampling="local")
    assert torch.equal(default.probs, weights.probs) and not torch.equal(default.probs, local.probs)
    assert [m.sampling for m in layers] == [SamplingMode.WEIGHTS] + [SamplingMode.LOCAL] * (len(layers) - 1)

    class Boom(torch.nn.Module):  # the modes come back after an exception too
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    model.append(Boom())
    with pytest.raises(RuntimeError, match="boom"):
        predict(model, x, samples=2, sampling="local")
    assert [m.sampling for m in layers] == [SamplingMode.WEIGHTS] + [SamplingMode.LOCAL] * (len(layers) - 1)
    with pytest.raises(ConfigError, match="sampling"):
        predict(model, x, sampling="flipout")


def test_weight_sampling_has_finite_gradients_for_variational_dropout() -> None:
    # σ = sqrt(α)·|θ| without a square root of α·θ²: finite gradients where a mean is exactly 0
    torch.manual_seed(0)
    layer = BayesLinear(4, 3, family="variational-dropout")
    with torch.no_grad():
        layer.weight[0, 0] = 0.0
    layer.sampling = "weights"
    layer(torch.randn(5, 4)).square().sum().backward()
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(layer.logit_alpha.grad).all()
    assert torch.allclose(layer.sigma**2, layer.sigma2)


def test_predict_builds_no_autograd_graph() -> None:
    # the K passes run without autograd: outputs are plain tensors, the caller's grad mode is untouched
    model = _model()
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    pred = predict(model, x, samples=3, batch_size=4, generator=torch.Generator().manual_seed(1))
    for t in (pred.probs, pred.entropy, pred.expected_entropy, pred.mutual_information):
        assert not t.requires_grad and t.grad_fn is None
    assert torch.is_grad_enabled()  # the caller's mode is left as it was


def test_predict_leaves_the_global_generator_and_takes_a_dataloader() -> None:
    model = _model()
    x = torch.rand(12, 1, 28, 28)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(12)), batch_size=5)
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    a = predict(model, loader, samples=3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(torch.rand(2), expected)
    b = predict(model, x, samples=3, batch_size=5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a.probs, b.probs)
    plain = paper_net("deterministic", widths=(2, 4))
    assert torch.equal(predict(plain, x, samples=5).mutual_information, torch.zeros(12))
    with pytest.raises(ConfigError, match="samples"):
        predict(model, x, samples=0)


def test_metrics_against_torchmetrics_and_definitions(tmp_path: Path) -> None:
    torchmetrics = pytest.importorskip("torchmetrics")
    g = torch.Generator().manual_seed(0)
    probs = F.softmax(3 * torch.randn(500, 10, generator=g), 1)
    y = torch.randint(0, 10, (500,), generator=g)
    ref = torchmetrics.classification.MulticlassCalibrationError(num_classes=10, n_bins=15, norm="l1")
    assert expected_calibration_error(probs, y) == pytest.approx(float(ref(probs, y)), abs=1e-6)
    m = classification_metrics(probs, y)
    assert m["nll"] == pytest.approx(float(F.nll_loss(probs.log(), y)), rel=1e-5)
    assert m["brier"] == pytest.approx(float(((probs - F.one_hot(y, 10)) ** 2).sum(1).mean()), rel=1e-6)
    assert m["accuracy"] == pytest.approx(float((probs.argmax(1) == y).float().mean()))
    perfect = F.one_hot(y, 10).float()
    assert expected_calibration_error(perfect, y) == 0.0 and math.isclose(classification_metrics(perfect, y)["brier"], 0.0)
    path = reliability_diagram(probs, y, tmp_path / "rel.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
