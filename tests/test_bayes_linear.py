"""Bayesian linear layers, converting a whole model, and the conversion's errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.inference import (
    BayesConv2d,
    BayesLinear,
    Family,
    LogUniformKL,
    StandardNormalKL,
    bayesian_layers,
    kl_divergence,
    paper_net,
    to_bayesian,
    to_bayesian_report,
)


def test_bayes_linear_local_reparameterisation_moments() -> None:
    torch.manual_seed(0)
    layer = BayesLinear(6, 3, log_sigma2_init=-2.0)
    x = torch.rand(4, 6)
    with torch.no_grad():
        outs = layer(x.repeat(20000, 1)).view(20000, 4, 3)  # each row draws its own output noise
    mean = F.linear(x, layer.weight, layer.bias)
    var = F.linear(x * x, layer.log_sigma2.exp())
    assert torch.allclose(outs.mean(0), mean.detach(), atol=5 * float(var.detach().sqrt().max()) / math.sqrt(20000))
    assert torch.allclose(outs.var(0), var.detach(), rtol=0.05)
    layer.stochastic = False
    assert torch.equal(layer(x), mean)
    lin = layer.to_linear()
    assert torch.equal(lin(x), mean)


def test_to_bayesian_converts_linear_layers_on_request(tiny_registry: object) -> None:
    net = paper_net("deterministic", widths=(2, 4))
    model = to_bayesian(net, {"0": "tiny-7x7", "3": "standard-normal", "7": "log-uniform"}, linear=True)
    layers = dict(bayesian_layers(model))
    assert isinstance(layers["7"], BayesLinear) and isinstance(layers["7"].prior, LogUniformKL)
    assert layers["7"].family is Family.VARIATIONAL_DROPOUT and isinstance(layers["0"], BayesConv2d)
    assert torch.isfinite(kl_divergence(model)) and model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    # "auto" gives the linear layer the default prior, and says why
    auto = to_bayesian(paper_net("deterministic", widths=(2, 4)), "auto", linear=True, kernels_per_step=4)
    assert isinstance(auto[7].prior, StandardNormalKL) and "linear layer" in str(to_bayesian_report(auto))
    # by default the classifier stays deterministic (the paper's net)
    assert isinstance(to_bayesian(paper_net("deterministic", widths=(2, 4)), "standard-normal")[7], nn.Linear)
    for entry in ("tiny-7x7", "dwp"):
        with pytest.raises(UnsupportedLayerError, match="is linear"):
            to_bayesian(paper_net("deterministic", widths=(2, 4)), {"7": entry}, linear=True)


def test_a_mapping_key_that_matches_no_layer_is_an_error() -> None:
    with pytest.raises(UnsupportedLayerError, match=r"'conv9'.*matches no convertible layer.*'0', '3'"):
        to_bayesian(paper_net("deterministic", widths=(2, 4)), {"conv9": "standard-normal"})
    with pytest.raises(UnsupportedLayerError, match="'layer5.\\*'"):
        to_bayesian(paper_net("deterministic", widths=(2, 4)), {"layer5.*": "standard-normal"})
    # kernel-size keys may name sizes the model lacks
    to_bayesian(paper_net("deterministic", widths=(2, 4)), {3: "standard-normal", "5x5": "standard-normal"},
                default="standard-normal")


def test_torchvision_resnet18_whole_model_one_step(tiny_registry: object) -> None:
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=10)
    model = to_bayesian(net, {3: "tiny-3x3"}, default="standard-normal", linear=True, kernels_per_step=8)
    assert isinstance(model.fc, BayesLinear) and isinstance(model.layer1[0].conv1, BayesConv2d)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = F.cross_entropy(model(x), y) * 100 + kl_divergence(model)
    loss.backward()
    assert model.fc.weight.grad is not None and torch.isfinite(loss)
