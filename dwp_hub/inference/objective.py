"""The variational objective of a Bayesian model, with one documented scaling convention.

* :func:`kl_divergence` is KL(q(W) ‖ p(W)) **summed over every Bayesian weight** of the model
  (for deep weight priors, the auxiliary upper bound of the paper's Eq. 7).
* :func:`neg_elbo` is ``N · mean cross-entropy(batch) + kl_weight · KL``: the data term is the
  batch estimate of the sum over all N training examples, so the value is the negative ELBO of the
  whole training set (KL weight 1, no annealing: the paper's recipe).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.errors import ConfigError
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


#: Likelihoods :func:`data_term` knows: ``categorical`` (softmax over logits; the paper's) and
#: ``gaussian`` (regression: y ~ N(f(x), noise_std²)).
LIKELIHOODS = ("categorical", "gaussian")


def data_term(output: Tensor, target: Tensor, n_train: int, likelihood: str = "categorical",
              noise_std: float = 1.0) -> Tensor:
    """The batch estimate of −Σ_{i=1..N} log p(y_i | x_i, W): ``n_train`` times the batch mean of
    −log p(y|x, W).

    This is the scaling convention of the whole package (the KL is **not** divided by N): for a batch
    of B examples out of N, ``data_term(model(xb), yb, N) + kl_divergence(model)`` is an unbiased
    estimate of the negative ELBO of the whole training set. Use it in your own training loop.

    Args:
        output: logits ``[B, C]`` (categorical) or predictions shaped like ``target`` (gaussian).
        target: class indices ``[B]`` or regression targets.
        n_train: N, the number of training examples.
        likelihood: ``"categorical"`` or ``"gaussian"``.
        noise_std: the Gaussian likelihood's observation noise σ.
    """
    if likelihood == "categorical":
        return n_train * F.cross_entropy(output, target)
    if likelihood == "gaussian":
        var = noise_std**2
        nll = 0.5 * ((output - target.reshape(output.shape)) ** 2 / var + math.log(2 * math.pi * var))
        return n_train * nll.reshape(len(output), -1).sum(1).mean()
    raise ConfigError(f"Unknown likelihood {likelihood!r}; use one of {', '.join(LIKELIHOODS)}.")


def neg_elbo(logits: Tensor, target: Tensor, n_train: int, kl: Tensor, kl_weight: float = 1.0) -> Tensor:
    """Negative ELBO of the training set: ``n_train · mean CE + kl_weight · kl`` (nats)."""
    return data_term(logits, target, n_train) + kl_weight * kl


def bound_gap(model: nn.Module, k: int = 1000, max_kernels: int | None = 256,
              generator: torch.Generator | None = None) -> Mapping[str, GapEstimate]:
    """Appendix F gap estimate for every deep-weight-prior layer (see :meth:`DeepWeightPriorKL.gap`)."""
    return {n: m.prior.gap(m, k=k, max_kernels=max_kernels, generator=generator)  # type: ignore[union-attr]
            for n, m in bayesian_layers(model) if isinstance(m.prior, DeepWeightPriorKL)}
