"""The variational-dropout family and the paper's log-uniform arm (Kingma et al. 2015)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from dwp_hub.errors import ConfigError, UnsupportedLayerError
from dwp_hub.inference import (
    BayesConv2d,
    Family,
    LogUniformKL,
    SparseLogUniformKL,
    StandardNormalKL,
    bayesian_layers,
    kl_divergence,
    paper_net,
    prior_families,
    to_bayesian,
    to_bayesian_report,
)
from dwp_hub.inference.priors import C1, C2, C3
from dwp_hub.model.nets import NetConfig, build_net


pytestmark = pytest.mark.usefixtures("one_thread")


def _vd_layer(out: int = 3, inp: int = 2, k: int = 3, a: float = -2.0) -> BayesConv2d:
    torch.manual_seed(0)
    return BayesConv2d(inp, out, k, padding=1, family="variational-dropout", logit_alpha_init=a)


def test_vd_layer_parameters_and_initialisation() -> None:
    layer = _vd_layer()
    names = {n for n, _ in layer.named_parameters()}
    assert names == {"weight", "logit_alpha", "bias"}
    assert layer.family is Family.VARIATIONAL_DROPOUT
    assert torch.allclose(layer.alpha, torch.full_like(layer.weight, 1 / (1 + math.exp(2.0))))
    assert torch.allclose(layer.sigma2, layer.alpha * layer.weight**2)
    assert torch.all(layer.alpha < 1)  # truncated: sigmoid keeps alpha in (0, 1)
    assert "variational-dropout" in repr(layer)


def test_vd_local_reparameterisation_matches_weight_sampling() -> None:
    """Output mean and variance of the local reparameterisation equal those of conv(x, w), w ~ q."""
    layer = _vd_layer(a=-0.5)
    x = torch.rand(2, 2, 5, 5)
    with torch.no_grad():
        outs = torch.stack([layer(x) for _ in range(4000)])
        ws = torch.stack([F.conv2d(x, layer.sample_weight(), layer.bias, padding=1) for _ in range(4000)])
        mean = F.conv2d(x, layer.weight, layer.bias, padding=1)
        var = F.conv2d(x * x, torch.sigmoid(layer.logit_alpha) * layer.weight**2, padding=1)
    for sample in (outs, ws):
        se = (var.sqrt() / math.sqrt(len(sample))).clamp_min(1e-6)
        assert ((sample.mean(0) - mean).abs() < 5 * se + 1e-6).all()
        assert torch.allclose(sample.var(0), var, rtol=0.15, atol=1e-6)


def test_log_uniform_kl_formula_and_gradient() -> None:
    layer = _vd_layer(out=1, inp=1, k=1, a=0.3)
    alpha = 1 / (1 + math.exp(-0.3))
    expected = -(0.5 * math.log(alpha) + C1 * alpha + C2 * alpha**2 + C3 * alpha**3)
    kl = LogUniformKL().kl(layer)
    assert kl.item() == pytest.approx(expected, abs=1e-6)
    kl.backward()
    assert layer.logit_alpha.grad is not None and layer.logit_alpha.grad.item() < 0  # pushes alpha up
    assert layer.weight.grad is None  # scale invariant: the KL does not depend on theta


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.25, 0.5, 0.75, 0.95])
def test_log_uniform_kl_approximation_matches_the_published_curve(alpha: float) -> None:
    """Kingma et al. (2015): KL(N(θ, αθ²) ‖ log-uniform) = const − 0.5·log α + E_{ε~N(1, α)} log|ε|.
    The polynomial approximation, with the constant fitted once, is within 0.01 nats of it."""
    def approx(a: float) -> float:
        return -(0.5 * math.log(a) + C1 * a + C2 * a**2 + C3 * a**3)

    # the constant: the exact curve minus the approximation at a reference alpha
    const = _exact_vd_kl(0.5) - approx(0.5)
    assert approx(alpha) + const == pytest.approx(_exact_vd_kl(alpha), abs=0.01)


@functools.lru_cache(maxsize=None)
def _exact_vd_kl(a: float) -> float:
    """Monte Carlo estimate (2M draws, seeded per alpha) of the exact curve, up to its constant."""
    g = torch.Generator().manual_seed(int(a * 1000))
    eps = 1 + math.sqrt(a) * torch.randn(2_000_000, generator=g, dtype=torch.float64)
    return -0.5 * math.log(a) + float(torch.log(eps.abs()).mean())


def test_standard_normal_kl_on_vd_family_matches_monte_carlo() -> None:
    layer = _vd_layer(out=2, inp=2, k=3, a=-1.0)
    with torch.no_grad():
        s2 = layer.sigma2
        w = layer.weight + s2.sqrt() * torch.randn(20000, *layer.weight.shape)
        log_q = -0.5 * (math.log(2 * math.pi) + s2.log() + (w - layer.weight) ** 2 / s2)
        log_p = -0.5 * (math.log(2 * math.pi) + w**2)
        mc = (log_q - log_p).flatten(1).sum(1)
    closed = StandardNormalKL().kl(layer)
    assert abs(mc.mean() - closed) < 4 * mc.std() / math.sqrt(len(mc))


def test_to_bayesian_family_auto_and_valid_combinations(tiny_registry: object) -> None:
    net = build_net(NetConfig("fconv", (4, 8)))
    model = to_bayesian(net, {"0": "log-uniform", "3": "standard-normal"})
    layers = dict(bayesian_layers(model))
    assert layers["0"].family is Family.VARIATIONAL_DROPOUT and isinstance(layers["0"].prior, LogUniformKL)
    assert layers["3"].family is Family.GAUSSIAN
    assert "variational-dropout" in str(to_bayesian_report(model))
    assert torch.isfinite(kl_divergence(model))
    # the standard normal on the variational-dropout family is a valid combination
    model = to_bayesian(build_net(NetConfig("fconv", (4, 8))), "standard-normal", family="variational-dropout")
    assert all(m.family is Family.VARIATIONAL_DROPOUT for _, m in bayesian_layers(model))
    # combinations that make no sense: an error that lists the valid ones
    with pytest.raises(UnsupportedLayerError, match=r"not defined on the gaussian family.*log-uniform: variational-dropout"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), "log-uniform", family="gaussian")
    with pytest.raises(UnsupportedLayerError, match=r"dwp prior is not defined on the variational-dropout"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), {"0": "tiny-7x7"}, default=None,
                    family="variational-dropout")
    with pytest.raises(ConfigError, match="Unknown family .dropout.; use one of gaussian, variational-dropout"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), "standard-normal", family="dropout")
    assert prior_families()["sparse-log-uniform"] == ("gaussian",)


def test_sparse_log_uniform_keeps_its_own_name() -> None:
    model = to_bayesian(build_net(NetConfig("fconv", (4, 8))), "sparse-log-uniform")
    assert all(isinstance(m.prior, SparseLogUniformKL) and m.family is Family.GAUSSIAN
               for _, m in bayesian_layers(model))


def test_paper_net_log_uniform_is_the_papers_arm() -> None:
    model = paper_net("log-uniform", widths=(2, 4), seed=0)
    plain = paper_net("deterministic", widths=(2, 4), seed=0)
    for (_, layer), conv in zip(bayesian_layers(model), [m for m in plain.modules() if isinstance(m, nn.Conv2d)]):
        assert layer.family is Family.VARIATIONAL_DROPOUT
        assert torch.equal(layer.weight, conv.weight)  # Xavier means, same seed
        assert torch.allclose(layer.logit_alpha, torch.full_like(layer.weight, -2.0))


def test_paper_net_init_ablation_separates_init_from_prior(tiny_registry: object) -> None:
    table = {7: "tiny-7x7", 5: "tiny-5x5"}
    dwp = paper_net("dwp", dwp_priors=table, widths=(2, 4), seed=3)
    sn_dwp_init = paper_net("standard-normal", dwp_priors=table, widths=(2, 4), seed=3, init="dwp")
    dwp_xavier = paper_net("dwp", dwp_priors=table, widths=(2, 4), seed=3, init="xavier")
    xavier = paper_net("deterministic", widths=(2, 4), seed=3)
    convs = [m for m in xavier.modules() if isinstance(m, nn.Conv2d)]
    for (_, a), (_, b), (_, c), conv in zip(bayesian_layers(dwp), bayesian_layers(sn_dwp_init),
                                            bayesian_layers(dwp_xavier), convs):
        assert torch.equal(a.weight, b.weight)          # the same dwp initialisation, other prior
        assert isinstance(b.prior, StandardNormalKL)
        assert torch.equal(c.weight, conv.weight)       # the dwp prior with Xavier means
        assert not torch.equal(a.weight, conv.weight)
    with pytest.raises(ConfigError, match="init must be one of"):
        paper_net("dwp", dwp_priors=table, widths=(2, 4), init="kaiming")


def test_paper_net_dwp_init_is_xavier_then_decoder_means_from_one_seeded_generator(tiny_registry: object) -> None:
    """Rebuilt independently: one generator seeded with ``seed`` draws the Xavier weights, then the z ~ N(0, I) of
    each conv in network order (7x7 first, then 5x5), whose decoder means become that conv's weights."""
    import dwp_hub
    from dwp_hub.inference import DeepWeightPriorKL
    from dwp_hub.model.nets import xavier_init_

    table = {7: "tiny-7x7", 5: "tiny-5x5"}
    gen = torch.Generator().manual_seed(3)
    ref = xavier_init_(build_net(NetConfig("fconv", (2, 4))), gen)
    ref_convs = [m for m in ref.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size[0] for c in ref_convs] == [7, 5]
    for conv in ref_convs:
        DeepWeightPriorKL(dwp_hub.load(table[conv.kernel_size[0]])).init_means_(conv, gen)
    for init_prior in ("dwp", "standard-normal"):
        model = paper_net(init_prior, dwp_priors=table, widths=(2, 4), seed=3, init="dwp")
        layers = [m for _, m in bayesian_layers(model)]
        assert len(layers) == 2
        for layer, conv in zip(layers, ref_convs):
            assert torch.equal(layer.weight.detach(), conv.weight.detach())
            assert torch.equal(layer.bias.detach(), conv.bias.detach())  # zero biases from xavier_init_


def test_paper_net_mixes_a_deep_weight_prior_with_gaussian_layers(tiny_registry: object) -> None:
    from dwp_hub.inference import DeepWeightPriorKL

    model = paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "standard-normal"}, widths=(2, 4), seed=1)
    xavier = paper_net("deterministic", widths=(2, 4), seed=1)
    first, second = (m for _, m in bayesian_layers(model))
    assert isinstance(first.prior, DeepWeightPriorKL) and isinstance(second.prior, StandardNormalKL)
    assert torch.equal(second.weight, xavier[3].weight)  # Gaussian layer: Xavier means
    assert not torch.equal(first.weight, xavier[0].weight)
