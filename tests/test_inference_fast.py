"""The fast deep-weight-prior bound: unbiasedness, sampler, batching (dwp_hub/inference/fast.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import dwp_hub
from dwp_hub.inference import (
    DeepWeightPriorKL,
    kl_divergence,
    kl_terms,
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


def test_control_variate_gives_every_kernel_a_gradient_after_a_cycle(tiny_registry: Path) -> None:
    """Once every kernel's gradient memory is filled (one cycle), each step's gradient is dense: all 16
    kernels get α_i, not just the 4 drawn; without the control variate only the drawn kernels do."""
    p = dwp_hub.load("tiny-5x5")
    layer = bayes_layer(out=4, inp=4, k=5, log_s2=-5.0)  # 16 kernels: a cycle is 4 steps of 4
    torch.manual_seed(0)

    def nonzero(prior: DeepWeightPriorKL) -> tuple[torch.Tensor, torch.Tensor]:
        layer.zero_grad()
        dwp_vae_terms([(layer, prior)])[0].backward()
        return ((layer.weight.grad.reshape(16, -1) != 0).any(1),
                (layer.log_sigma2.grad.reshape(16, -1) != 0).any(1))

    fast = DeepWeightPriorKL(p, kernels_per_step=4)  # cycle sampler, control variate (the defaults)
    th, ls = nonzero(fast)
    assert int(th.sum()) == int(ls.sum()) == 4  # the memory is empty: only the drawn kernels
    for _ in range(3):
        nonzero(fast)
    assert layer.dwp_cv_seen.all()
    th, ls = nonzero(fast)
    assert th.all() and ls.all()
    assert (layer.dwp_cv_theta.reshape(16, -1) != 0).any(1).all()
    th, ls = nonzero(DeepWeightPriorKL(p, kernels_per_step=4, control_variate=False))
    assert int(th.sum()) == int(ls.sum()) == 4


def test_generators_make_subsets_and_samples_reproducible(tiny_registry: Path) -> None:
    """``generator=`` drives the kernel subsets (select, kl_terms, kl_divergence) and sample_weight's noise."""
    p = dwp_hub.load("tiny-5x5")
    layer = bayes_layer(out=4, inp=4, k=5)  # 16 kernels

    def g(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    assert torch.equal(layer.sample_weight(g(1)), layer.sample_weight(g(1)))
    assert not torch.equal(layer.sample_weight(g(1)), layer.sample_weight(g(2)))
    uniform = DeepWeightPriorKL(p, kernels_per_step=4, sampler="uniform")
    assert torch.equal(uniform.select(layer, g(1)), uniform.select(layer, g(1)))
    assert not torch.equal(uniform.select(layer, g(1)), uniform.select(layer, g(2)))
    cycle = DeepWeightPriorKL(p, kernels_per_step=4)
    cycle.prepare(layer)  # the cycle sampler's state: buffers of the layer

    def new_cycle(seed: int) -> torch.Tensor:
        layer.dwp_cursor.fill_(layer.n_kernels)  # the next select starts a new cycle: a fresh permutation
        return cycle.select(layer, g(seed))

    assert torch.equal(new_cycle(1), new_cycle(1)) and not torch.equal(new_cycle(1), new_cycle(2))
    model = nn.Sequential(layer.set_prior(uniform))

    def kl(fn, seed: int):  # type: ignore[no-untyped-def]
        torch.manual_seed(0)  # the same (w, z) noise: only the generator's subset can differ
        return fn(model, generator=g(seed))

    with torch.no_grad():
        assert torch.equal(kl(kl_divergence, 1), kl(kl_divergence, 1))
        assert not torch.equal(kl(kl_divergence, 1), kl(kl_divergence, 2))
        assert torch.equal(kl(kl_terms, 1)["0"], kl(kl_terms, 1)["0"])
        assert not torch.equal(kl(kl_terms, 1)["0"], kl(kl_terms, 2)["0"])


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
    calls: list[int] = []  # inputs per decoder call
    hook = pa.decoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    torch.manual_seed(5)
    together = dwp_vae_terms([(a, pa), (b, pb)])
    assert calls == [a.n_kernels + b.n_kernels]  # one decoder call for both layers (full bound, 1 MC sample)
    hook.remove()
    torch.manual_seed(5)  # the batched call draws a's noise, then b's: separate calls in that order replay it
    sep_a = dwp_vae_terms([(a, pa)])[0]
    sep_b = dwp_vae_terms([(b, pb)])[0]
    assert pa.decoder is pb.decoder
    assert together[0].shape == together[1].shape == ()
    torch.testing.assert_close(together[0], sep_a, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(together[1], sep_b, rtol=1e-5, atol=1e-4)
