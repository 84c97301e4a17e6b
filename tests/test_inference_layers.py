"""Bayesian layers and the conversion of models (dwp_hub/inference/layers.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dwp_hub.init as dwp_init
from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.inference import (
    BayesConv2d,
    Bound,
    DeepWeightPriorKL,
    Family,
    LogUniformKL,
    Sampler,
    StandardNormalKL,
    bayesian_layers,
    kl_divergence,
    kl_terms,
    mean_weights,
    neg_elbo,
    to_bayesian,
    to_bayesian_report,
)
from dwp_hub.model.nets import NetConfig, build_net
from helpers import bayes_layer

_LOG_2PI = math.log(2 * math.pi)


pytestmark = pytest.mark.usefixtures("one_thread")




def test_bayes_conv_local_reparameterisation_moments() -> None:
    layer = bayes_layer(out=3, inp=2, k=3, log_s2=-2.0)
    x = torch.rand(4, 2, 9, 9)
    mean = F.conv2d(x, layer.weight, layer.bias)
    var = F.conv2d(x * x, layer.log_sigma2.exp())
    with torch.no_grad():  # one call on 4000 copies: the noise is independent per example
        draws = layer(x.repeat(4000, 1, 1, 1)).view(4000, 4, 3, 7, 7)
    assert layer(x).shape == (4, 3, 7, 7)
    assert torch.allclose(draws.mean(0), mean, atol=4 * var.sqrt().max().item() / math.sqrt(4000))
    assert torch.allclose(draws.var(0), var, rtol=0.15, atol=1e-6)


def test_bayes_conv_deterministic_mode_is_the_mean_conv() -> None:
    layer = bayes_layer()
    x = torch.rand(2, 4, 12, 12)
    expected = F.conv2d(x, layer.weight, layer.bias)
    with mean_weights(layer):
        assert torch.equal(layer(x), expected)
        assert torch.equal(layer(x), expected)
    assert layer.stochastic and not torch.equal(layer(x), expected)
    conv = layer.to_conv()
    assert torch.allclose(conv(x), expected)


def test_bayes_conv_copies_conv_options_and_gradients_flow() -> None:
    conv = nn.Conv2d(6, 4, 3, stride=2, padding=1, dilation=1, groups=2, bias=False, padding_mode="reflect")
    layer = BayesConv2d.from_conv(conv)
    x = torch.rand(2, 6, 10, 10)
    with mean_weights(layer):
        assert torch.allclose(layer(x), conv(x), atol=1e-6)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.log_sigma2.grad is not None
    assert torch.all(layer.log_sigma2 == -10.0)


def test_zero_input_patches_give_finite_gradients() -> None:
    layer = bayes_layer(out=2, inp=1, k=3, log_s2=-10.0)
    x = torch.zeros(1, 1, 6, 6)
    layer(x).sum().backward()
    assert torch.isfinite(layer.log_sigma2.grad).all() and torch.isfinite(layer.weight.grad).all()


def test_to_bayesian_fconv_by_kernel_size_and_name(tiny_registry: Path) -> None:
    net = build_net(NetConfig("fconv", (4, 8)))
    model = to_bayesian(net, {7: "tiny-7x7", 5: "tiny-5x5"})
    names = {n: type(m.prior).__name__ for n, m in bayesian_layers(model)}
    assert names == {"0": "DeepWeightPriorKL", "3": "DeepWeightPriorKL"}
    assert "tiny-5x5@1.0.0" in str(to_bayesian_report(model))
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    terms = kl_terms(model)
    assert set(terms) == {"0", "3"} and all(torch.isfinite(v) for v in terms.values())
    loss = neg_elbo(out, torch.tensor([0, 1, 2]), 50, kl_divergence(model))
    loss.backward()
    # the batched terms are each layer's own KL (exact bound: no kernel subsets), and the total is their sum
    full = to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "tiny-7x7", 5: "tiny-5x5"}, bound="full")
    with torch.no_grad():
        torch.manual_seed(0)
        batched = kl_terms(full)
        torch.manual_seed(0)
        alone = {n: m.kl() for n, m in bayesian_layers(full)}
        torch.manual_seed(0)
        total = kl_divergence(full)
    assert batched.keys() == alone.keys() and all(torch.equal(batched[n], alone[n]) for n in alone)
    torch.testing.assert_close(total, sum(alone.values()))
    y = torch.tensor([0, 1, 2])
    torch.testing.assert_close(neg_elbo(out, y, 50, total, kl_weight=0.5), 50 * F.cross_entropy(out, y) + 0.5 * total)

    net2 = build_net(NetConfig("fconv", (4, 8)))
    model2 = to_bayesian(net2, {"0": "log-uniform", "3": None})
    assert [n for n, _ in bayesian_layers(model2)] == ["0"]
    assert isinstance(model2[0].prior, LogUniformKL) and isinstance(model2[3], nn.Conv2d)


def test_to_bayesian_pins_the_documented_defaults(tiny_registry: Path) -> None:
    """README: the fast bound over 32 kernels per layer and step, one MC sample, log σ² initialised to −10 on the
    gaussian family and logit α to −2 on the variational-dropout family."""
    model = to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "tiny-7x7", 5: "log-uniform"})
    dwp_layer, vd_layer = model[0], model[3]
    prior = dwp_layer.prior
    assert isinstance(prior, DeepWeightPriorKL)
    assert prior.bound is Bound.FAST and prior.kernels_per_step == 32 and prior.mc_samples == 1
    assert prior.sampler is Sampler.CYCLE and prior.control_variate and prior.cv_decay == 0.5
    assert prior.subset_size(dwp_layer.n_kernels) == 4  # 4 kernels < 32: the whole layer
    assert prior.subset_size(100) == 32
    assert torch.equal(dwp_layer.log_sigma2, torch.full_like(dwp_layer.weight, -10.0))
    assert vd_layer.family is Family.VARIATIONAL_DROPOUT
    assert torch.equal(vd_layer.logit_alpha, torch.full_like(vd_layer.weight, -2.0))
    assert torch.equal(BayesConv2d(2, 3, 5).log_sigma2, torch.full((3, 2, 5, 5), -10.0))


def test_to_bayesian_auto_uses_hub_priors_by_kernel_size_else_default(tiny_registry: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dwp_init, "AUTO_PRIORS", {7: "tiny-7x7", 5: "missing-5x5"})
    model = to_bayesian(build_net(NetConfig("fconv", (4, 8))), "auto", default="log-uniform")
    assert isinstance(model[0].prior, DeepWeightPriorKL) and "tiny-7x7" in model[0].prior.describe()
    assert isinstance(model[3].prior, LogUniformKL)


def test_to_bayesian_torchvision_resnet(tiny_registry: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=10)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    model = to_bayesian(net, {3: "tiny-3x3", "layer4.*": "standard-normal"}, default="log-uniform",
                        kernels_per_step=16)
    layers = dict(bayesian_layers(model))
    assert len(layers) == n_convs
    assert isinstance(layers["conv1"].prior, LogUniformKL)                 # 7x7, no prior given
    assert isinstance(layers["layer1.0.conv1"].prior, DeepWeightPriorKL)   # 3x3
    assert isinstance(layers["layer4.0.conv1"].prior, StandardNormalKL)    # pattern beats size
    assert isinstance(layers["layer2.0.downsample.0"].prior, LogUniformKL)  # 1x1
    shared = {id(m.prior.decoder) for m in layers.values() if isinstance(m.prior, DeepWeightPriorKL)}
    assert len(shared) == 1  # one hub prior loaded once: all 3x3 layers share a decoder call
    n_dwp = sum(isinstance(m.prior, DeepWeightPriorKL) for m in layers.values())
    assert n_dwp > 1
    decoder = next(m.prior.decoder for m in layers.values() if isinstance(m.prior, DeepWeightPriorKL))
    calls: list[int] = []
    handle = decoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    try:
        with torch.no_grad():
            kl_divergence(model)
            assert len(calls) == 1  # every 3x3 layer's latents in one decoder call
            kl_divergence(model)
            assert len(calls) == 2  # one more per evaluation
    finally:
        handle.remove()
    per_layer = [m.prior.subset_size(m.n_kernels) for m in layers.values() if isinstance(m.prior, DeepWeightPriorKL)]
    assert calls[0] == sum(per_layer) == 16 * n_dwp  # kernels_per_step=16 latents of each layer, one MC sample
    model.eval()
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(kl_divergence(model))


def test_to_bayesian_errors(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dwp_init, "AUTO_PRIORS", {5: "tiny-5x5"})
    with pytest.raises(UnsupportedLayerError, match="no nn.Conv2d"):
        to_bayesian(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(UnsupportedLayerError, match="5x5 kernels but tiny-7x7"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "tiny-7x7", 5: "tiny-7x7"})
    with pytest.raises(UnsupportedLayerError, match="no deep weight prior for 7x7"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), "dwp")
    with pytest.raises(UnsupportedLayerError, match="left deterministic"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "standard-normal"}, default=None, strict=True)
