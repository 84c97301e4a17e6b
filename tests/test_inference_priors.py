"""KL estimators of the priors (dwp_hub/inference/priors.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import dwp_hub
from dwp_hub.inference import (
    BayesConv2d,
    Bound,
    DeepWeightPriorKL,
    Family,
    LogUniformKL,
    Sampler,
    SparseLogUniformKL,
    StandardNormalKL,
    bound_gap,
    kl_divergence,
    to_bayesian,
)
from dwp_hub.inference.priors import DEFAULT_KERNELS_PER_STEP, K1, K2, K3, make_prior
from helpers import bayes_layer

_LOG_2PI = math.log(2 * math.pi)


pytestmark = pytest.mark.usefixtures("one_thread")




def test_standard_normal_kl_matches_monte_carlo() -> None:
    layer = bayes_layer(out=2, inp=2, k=3, log_s2=-1.0)
    closed = StandardNormalKL().kl(layer)
    with torch.no_grad():
        s = (0.5 * layer.log_sigma2).exp()
        w = layer.weight + s * torch.randn(20000, *layer.weight.shape)
        log_q = -0.5 * (_LOG_2PI + layer.log_sigma2 + ((w - layer.weight) / s) ** 2)
        log_p = -0.5 * (_LOG_2PI + w**2)
        mc = (log_q - log_p).flatten(1).sum(1)
    # tolerance: 4 Monte Carlo standard errors
    assert abs(mc.mean() - closed) < 4 * mc.std() / math.sqrt(len(mc))
    with torch.no_grad():
        mc2 = (log_q - (-0.5 * (_LOG_2PI + math.log(4.0) + w**2 / 4.0))).flatten(1).sum(1)
    assert abs(mc2.mean() - StandardNormalKL(std=2.0).kl(layer)) < 4 * mc2.std() / math.sqrt(len(mc2))


def test_sparse_log_uniform_kl_formula_and_limits() -> None:
    layer = bayes_layer(out=1, inp=1, k=1)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.log_sigma2.fill_(math.log(0.01))
    log_alpha = math.log(0.01) - math.log(0.25 + 1e-8)
    expected = -(K1 / (1 + math.exp(-(K2 + K3 * log_alpha))) - 0.5 * math.log1p(math.exp(-log_alpha)) - K1)
    assert SparseLogUniformKL().kl(layer).item() == pytest.approx(expected, rel=1e-5)
    kls = []
    for la in (-8.0, -2.0, 0.0, 4.0, 30.0):  # KL decreases with alpha and tends to 0
        with torch.no_grad():
            layer.log_sigma2.fill_(la + math.log(0.25))
        kls.append(SparseLogUniformKL().kl(layer).item())
    assert all(a > b for a, b in zip(kls, kls[1:]))
    assert abs(kls[-1]) < 1e-6 and kls[0] > 3.0


@pytest.mark.parametrize("mc_samples", [1, 3])
def test_dwp_bound_pieces_match_monte_carlo(tiny_registry: Path, mc_samples: int) -> None:
    prior = DeepWeightPriorKL(dwp_hub.load("tiny-5x5"), bound="full", mc_samples=mc_samples)
    layer = bayes_layer(out=2, inp=2, k=5, log_s2=-3.0)
    # -H(q) in closed form vs MC
    with torch.no_grad():
        s = (0.5 * layer.log_sigma2).exp()
        w = layer.weight + s * torch.randn(4000, *layer.weight.shape)
        log_q = (-0.5 * (_LOG_2PI + layer.log_sigma2 + ((w - layer.weight) / s) ** 2)).flatten(1).sum(1)
    assert abs(log_q.mean() - prior.neg_entropy(layer)) < 4 * log_q.std() / math.sqrt(len(log_q))
    # the bound equals -H(q) + E_q E_r[log r(z|w) - log p(z) - log p(w|z)] estimated by brute force
    with torch.no_grad():
        est = torch.stack([prior.kl(layer) for _ in range(300)])
        ws = layer.sample_weight().reshape(-1, 1, 5, 5).repeat(1, 1, 1, 1)
        brute = []
        for _ in range(300):
            ws = layer.sample_weight().reshape(-1, 1, 5, 5)
            mu, var = prior.encoder(ws)
            z = mu + var.sqrt() * torch.randn_like(mu)
            log_r = (-0.5 * (_LOG_2PI + var.log() + (z - mu) ** 2 / var)).sum(1)
            log_pz = (-0.5 * (_LOG_2PI + z**2)).sum(1)
            w_mu, w_var = prior.decoder(z)
            log_pw = (-0.5 * (_LOG_2PI + w_var.log() + (ws - w_mu) ** 2 / w_var)).flatten(1).sum(1)
            brute.append(prior.neg_entropy(layer) + (log_r - log_pz - log_pw).sum())
        brute_t = torch.stack(brute)
    se = math.sqrt(est.var() / len(est) + brute_t.var() / len(brute_t))
    assert abs(est.mean() - brute_t.mean()) < 4 * se


def test_dwp_bound_is_above_the_importance_weighted_kl(tiny_registry: Path) -> None:
    model = to_bayesian(nn.Sequential(nn.Conv2d(1, 4, 7), nn.Conv2d(4, 4, 5)),
                        {7: "tiny-7x7", 5: "tiny-5x5"}, bound="full", log_sigma2_init=-6.0)
    gaps = bound_gap(model, k=200, max_kernels=None, generator=torch.Generator().manual_seed(0))
    assert set(gaps) == {"0", "1"}
    for g in gaps.values():
        assert math.isfinite(g.kl_bound) and math.isfinite(g.kl_iw)
        assert g.gap > -0.05 * g.kernels  # >= 0 up to Monte Carlo noise (a few hundredths of a nat per kernel)
        assert g.gap_per_kernel < 0.5  # measured 0.05-0.13; a lost log(k) would add about 5.3 nats per kernel
        assert g.kernels_used == g.kernels
    # with one importance sample the IW estimate is the bound itself, in expectation
    for g in bound_gap(model, k=1, max_kernels=None, generator=torch.Generator().manual_seed(0)).values():
        assert abs(g.gap_per_kernel) < 0.3


def test_dwp_prior_pins_the_documented_defaults(tiny_registry: Path) -> None:
    """README: the fast bound over 32 kernels per layer and step (cycle sampler, control variate), one MC sample;
    a gaussian-family layer starts at log σ² = −10."""
    for prior in (DeepWeightPriorKL(dwp_hub.load("tiny-5x5")), make_prior("tiny-5x5", nn.Conv2d(2, 3, 5))):
        assert isinstance(prior, DeepWeightPriorKL)
        assert prior.bound is Bound.FAST and prior.kernels_per_step == 32 and prior.mc_samples == 1
        assert prior.sampler is Sampler.CYCLE and prior.control_variate and prior.cv_decay == 0.5
        assert prior.subset_size(4096) == 32 and prior.subset_size(6) == 6
        assert "fast bound, 32 kernels/step, control variate, 1 MC" in prior.describe()
    assert DEFAULT_KERNELS_PER_STEP == 32
    layer = BayesConv2d.from_conv(nn.Conv2d(2, 3, 5))
    assert layer.family is Family.GAUSSIAN
    assert torch.equal(layer.log_sigma2, torch.full((3, 2, 5, 5), -10.0))


@pytest.mark.parametrize(("logit_alpha", "expected"), [
    (40.0, -0.24570927),  # α = sigmoid(40) = 1 in float32, log α = 0: −(c1 + c2 + c3)
    (0.0, 0.06807087),    # α = 1/2: 0.5·log 2 − c1/2 − c2/4 − c3/8
])
def test_log_uniform_kl_literal_values(logit_alpha: float, expected: float) -> None:
    """Kingma et al. (2015): KL ≈ −0.5·log α − c1·α − c2·α² − c3·α³ with c1 = 1.16145124, c2 = −1.50204118,
    c3 = 0.58629921 and no added constant, per weight; the layer's KL is the sum over its weights. The values are
    worked out by hand (not from the module's constants)."""
    layer = BayesConv2d(2, 3, 1, family="variational-dropout", logit_alpha_init=logit_alpha)
    assert LogUniformKL().kl(layer).item() == pytest.approx(6 * expected, abs=1e-5)
    one = BayesConv2d(1, 1, 1, family="variational-dropout", logit_alpha_init=logit_alpha)
    assert LogUniformKL().kl(one).item() == pytest.approx(expected, abs=1e-6)


def test_reverse_model_trains_decoder_stays_frozen(tiny_registry: Path) -> None:
    p = dwp_hub.load("tiny-5x5")
    before = {k: v.clone() for k, v in p.vae.state_dict().items()}
    model = to_bayesian(nn.Sequential(nn.Conv2d(2, 3, 5)), {5: p})
    prior = model[0].prior
    assert all(q.requires_grad for q in prior.encoder.parameters())
    assert not any(q.requires_grad for q in prior.decoder.parameters())
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], 1e-2)
    for _ in range(3):
        opt.zero_grad()
        kl_divergence(model).backward()
        opt.step()
    after = p.vae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # hub prior untouched (encoder was copied)
    enc_moved = any(not torch.equal(x, y) for x, y in zip(prior.encoder.state_dict().values(),
                                                         p.vae.encoder.state_dict().values()))
    assert enc_moved


def test_init_means_are_decoder_means_of_standard_normal_draws(tiny_registry: Path) -> None:
    """The paper's dwp initialisation: each kernel a decoder mean of its own z ~ N(0, I), never a noisy sample;
    the same draw as ``dwp_hub.init_`` with the same generator."""
    hub_prior = dwp_hub.load("tiny-5x5")
    prior = DeepWeightPriorKL(hub_prior)
    conv = nn.Conv2d(3, 4, 5)
    with torch.no_grad():
        prior.init_means_(conv, torch.Generator().manual_seed(0))
        z = torch.randn(12, prior.z_dim, generator=torch.Generator().manual_seed(0))
        want = prior.decoder(z)[0].reshape(4, 3, 5, 5)
    assert torch.equal(conv.weight.detach(), want)
    other = nn.Conv2d(3, 4, 5)
    dwp_hub.init_(other, hub_prior, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(conv.weight.detach(), other.weight.detach())
