"""The fast deep-weight-prior bound: unbiasedness, sampler, batching (dwp_hub/inference/fast.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import dwp_hub
from dwp_hub.inference import (
    DeepWeightPriorKL,
)
from dwp_hub.inference.fast import dwp_vae_terms
from helpers import bayes_layer

_LOG_2PI = math.log(2 * math.pi)


pytestmark = pytest.mark.usefixtures("one_thread")




def test_fast_bound_is_unbiased(tiny_registry: Path) -> None:
    """Mean of the fast estimator over many draws equals the full sum's mean (within 4 standard errors;
    about 1% of the value here, so a wrong n/m scaling or a biased subset would fail)."""
    p = dwp_hub.load("tiny-5x5")
    layer = bayes_layer(out=8, inp=4, k=5, log_s2=-5.0)  # 32 kernels
    full = DeepWeightPriorKL(p, bound="full")  # every copy starts from the prior's encoder
    with torch.no_grad():
        ref = torch.stack([dwp_vae_terms([(layer, full)])[0] for _ in range(100)])
        for sampler in ("uniform", "cycle"):
            fast = DeepWeightPriorKL(p, kernels_per_step=4, sampler=sampler)
            assert fast.subset_size(layer.n_kernels) == 4
            est = torch.stack([dwp_vae_terms([(layer, fast)])[0] for _ in range(500)])
            se = math.sqrt(est.var() / len(est) + ref.var() / len(ref))
            assert abs(est.mean() - ref.mean()) < 4 * se, (sampler, est.mean(), ref.mean(), se)
            assert est.std() > ref.std()  # it is a subsampled estimate


@pytest.mark.parametrize("control_variate", [False, True])
def test_fast_bound_gradients_are_unbiased(tiny_registry: Path, control_variate: bool) -> None:
    """Mean gradient (projected on a fixed direction) of the fast bound equals the full bound's (4 SE)."""
    p = dwp_hub.load("tiny-5x5")
    layer = bayes_layer(out=4, inp=4, k=5, log_s2=-5.0)  # 16 kernels
    direction = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1))

    def draws(prior: DeepWeightPriorKL, r: int) -> torch.Tensor:
        out = []
        for _ in range(r):
            layer.zero_grad()
            (2.0 * dwp_vae_terms([(layer, prior)])[0]).backward()  # the factor 2 exercises the scale hook
            out.append((layer.weight.grad * direction).sum() + layer.log_sigma2.grad.sum())
        return torch.stack(out)

    full = DeepWeightPriorKL(p, bound="full")
    fast = DeepWeightPriorKL(p, kernels_per_step=4, control_variate=control_variate)
    ref, est = draws(full, 100), draws(fast, 500)
    se = math.sqrt(est.var() / len(est) + ref.var() / len(ref))
    assert abs(est.mean() - ref.mean()) < 4 * se, (est.mean(), ref.mean(), se)
    if control_variate:
        assert layer.dwp_cv_seen.all()  # the control-variate memory is a buffer of the layer


def test_cycle_sampler_visits_every_kernel_once_per_cycle(tiny_registry: Path) -> None:
    prior = DeepWeightPriorKL(dwp_hub.load("tiny-5x5"), kernels_per_step=6)
    layer = bayes_layer(out=4, inp=4, k=5)  # 16 kernels: blocks of 6, 6, 4 per cycle
    blocks = [prior.select(layer) for _ in range(9)]  # 3 cycles
    assert [len(b) for b in blocks] == [6, 6, 4] * 3
    for c in range(3):
        assert torch.equal(torch.cat(blocks[3 * c : 3 * c + 3]).sort().values, torch.arange(16))


def test_layers_sharing_a_prior_are_batched_and_match_separate_calls(tiny_registry: Path) -> None:
    p = dwp_hub.load("tiny-5x5")
    a, b = bayes_layer(seed=1), bayes_layer(out=4, seed=2)
    pa, pb = DeepWeightPriorKL(p, bound="full"), DeepWeightPriorKL(p, bound="full")
    torch.manual_seed(5)
    together = dwp_vae_terms([(a, pa), (b, pb)])
    torch.manual_seed(5)  # the batched call draws a's noise, then b's: separate calls in that order replay it
    sep_a = dwp_vae_terms([(a, pa)])[0]
    sep_b = dwp_vae_terms([(b, pb)])[0]
    assert pa.decoder is pb.decoder
    assert together[0].shape == together[1].shape == ()
    torch.testing.assert_close(together[0], sep_a, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(together[1], sep_b, rtol=1e-5, atol=1e-4)
