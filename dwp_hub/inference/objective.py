"""The variational objective of a Bayesian model, with one documented scaling convention.

* :func:`kl_divergence` is KL(q(W) ‖ p(W)) **summed over every Bayesian weight** of the model
  (for deep weight priors, the auxiliary upper bound of the paper's Eq. 7).
* :func:`neg_elbo` is ``N · mean cross-entropy(batch) + kl_weight · KL``: the data term is the
  batch estimate of the sum over all N training examples, so the value is the negative ELBO of the
  whole training set (KL weight 1, no annealing: the paper's recipe).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.inference.fast import dwp_vae_terms
from dwp_hub.inference.layers import bayesian_layers
from dwp_hub.inference.priors import DeepWeightPriorKL, GapEstimate


def kl_terms(model: nn.Module, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """KL term of every Bayesian layer with a prior, by layer name (nats, summed over weights).

    Deep-weight-prior layers are evaluated together (one decoder call per shared hub prior).
    ``generator`` drives the fast bound's kernel subsets.
    """
    layers = [(n, m) for n, m in bayesian_layers(model) if m.prior is not None]
    dwp = [(n, m) for n, m in layers if isinstance(m.prior, DeepWeightPriorKL)]
    vae = dwp_vae_terms([(m, m.prior) for _, m in dwp], generator) if dwp else []  # type: ignore[misc]
    vae_by_name = {n: v for (n, _), v in zip(dwp, vae)}
    out: dict[str, Tensor] = {}
    for name, layer in layers:
        if name in vae_by_name:
            out[name] = layer.prior.neg_entropy(layer) + vae_by_name[name]  # type: ignore[union-attr]
        else:
            out[name] = layer.prior.kl(layer)  # type: ignore[union-attr]
    return out


def kl_divergence(model: nn.Module, generator: torch.Generator | None = None) -> Tensor:
    """Σ over Bayesian layers of their KL terms (0 for a model without priors)."""
    terms = kl_terms(model, generator)
    if not terms:
        p = next(model.parameters(), None)
        return torch.zeros(()) if p is None else p.new_zeros(())
    return torch.stack(list(terms.values())).sum()


def data_term(logits: Tensor, target: Tensor, n_train: int) -> Tensor:
    """``n_train · mean cross-entropy``: the batch estimate of −Σ_i log p(y_i | x_i, W)."""
    return n_train * F.cross_entropy(logits, target)


def neg_elbo(logits: Tensor, target: Tensor, n_train: int, kl: Tensor, kl_weight: float = 1.0) -> Tensor:
    """Negative ELBO of the training set: ``n_train · mean CE + kl_weight · kl`` (nats)."""
    return data_term(logits, target, n_train) + kl_weight * kl


def bound_gap(model: nn.Module, k: int = 1000, max_kernels: int | None = 256,
              generator: torch.Generator | None = None) -> Mapping[str, GapEstimate]:
    """Appendix F gap estimate for every deep-weight-prior layer (see :meth:`DeepWeightPriorKL.gap`)."""
    return {n: m.prior.gap(m, k=k, max_kernels=max_kernels, generator=generator)  # type: ignore[union-attr]
            for n, m in bayesian_layers(model) if isinstance(m.prior, DeepWeightPriorKL)}
