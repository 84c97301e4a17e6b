"""The paper's MNIST experiment (Atanov et al. 2019, Section 4.1 and Table 2): its network and defaults.

The classifier is fconv 32/128: Conv(1→32, 7) → LeakyReLU → MaxPool2 → Conv(32→128, 5) → LeakyReLU →
MaxPool2 → Linear(128·9 → 10), with the conv layers under one of the paper's priors. ``dwp-hub vi``,
the transfer benefit of a published prior (:mod:`dwp_hub.training.transfer`) and the reproduction
scripts in ``tools/`` all build it here.

>>> from dwp_hub.paper import paper_net
>>> model = paper_net("dwp", seed=0)                  # notmnist-7x7 + notmnist-5x5, dwp-initialised means
>>> baseline = paper_net("deterministic", seed=0)     # the plain net (the L2 baseline)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dwp_hub.errors import ConfigError
from dwp_hub.inference.layers import to_bayesian
from dwp_hub.inference.priors import DeepWeightPriorKL, make_prior
from dwp_hub.model.nets import NetConfig, build_net, xavier_init_
from dwp_hub.registry.defaults import paper_priors, paper_priors_spec

__all__ = ["PAPER_DWP", "PAPER_INITS", "PAPER_PRIORS", "PAPER_WIDTHS", "paper_net", "paper_priors",
           "paper_priors_spec"]

#: Prior choices of the paper's Fig. 2a (``deterministic`` = the L2 baseline), plus
#: ``sparse-log-uniform`` (the additive-family log-uniform of sparse variational dropout, not a paper arm).
PAPER_PRIORS = ("dwp", "log-uniform", "standard-normal", "deterministic", "sparse-log-uniform")
#: The hub priors of the paper's MNIST experiment (prior learned on notMNIST kernels), by kernel size.
PAPER_DWP = paper_priors()
#: Initialisations of the conv means in :func:`paper_net`: ``"xavier"`` (seeded Xavier) or ``"dwp"``
#: (decoder means of z ~ N(0, I) under the deep weight priors); ``"auto"``: dwp for the dwp prior, else xavier.
PAPER_INITS = ("auto", "xavier", "dwp")
#: Conv widths of the paper's MNIST net (Table 2).
PAPER_WIDTHS = (32, 128)


def paper_net(prior: str, *, dwp_priors: dict[int, Any] | None = None, widths: tuple[int, int] = PAPER_WIDTHS,
              seed: int = 0, bound: str = "fast", kernels_per_step: int | None = None,
              mc_samples: int = 1, init: str = "auto") -> nn.Module:
    """The paper's MNIST classifier (fconv 32/128) with the conv layers under ``prior``.

    Xavier initialisation (seeded); for ``"dwp"`` the conv means are then set to decoder means of
    z ~ N(0, I) (the paper's initialisation). ``"deterministic"`` returns the plain net. ``"log-uniform"``
    is the paper's arm: the variational-dropout family (α = sigmoid(a), a = −2) with Xavier means.

    Args:
        prior: one of :data:`PAPER_PRIORS`.
        dwp_priors: ``{kernel_size: spec | DeepWeightPrior | KernelVAE}`` (default :data:`PAPER_DWP`).
        init: the means' initialisation (:data:`PAPER_INITS`); ``"xavier"`` with ``"dwp"`` and ``"dwp"``
            with another prior separate the deep weight prior's initialisation from the prior itself.
    """
    if prior not in PAPER_PRIORS:
        raise ConfigError(f"prior must be one of {', '.join(PAPER_PRIORS)}, got {prior!r}.")
    if init not in PAPER_INITS:
        raise ConfigError(f"init must be one of {', '.join(PAPER_INITS)}, got {init!r}.")
    if init == "auto":
        init = "dwp" if prior == "dwp" else "xavier"
    gen = torch.Generator().manual_seed(seed)
    net = xavier_init_(build_net(NetConfig("fconv", tuple(widths))), gen)
    table = dict(PAPER_DWP if dwp_priors is None else dwp_priors)
    if init == "dwp":
        cache: dict[Any, Any] = {}
        for conv in [m for m in net.modules() if isinstance(m, nn.Conv2d)]:
            ks = conv.kernel_size[0]
            if ks not in table:
                raise ConfigError(f"init='dwp' needs a deep weight prior for the {ks}x{ks} layer; dwp_priors has "
                                  f"{sorted(table)}.")
            prior_kl = make_prior(table[ks], conv, cache=cache)
            if isinstance(prior_kl, DeepWeightPriorKL):  # layers under a Gaussian prior keep Xavier means
                prior_kl.init_means_(conv, gen)
    if prior == "deterministic":
        return net
    if prior != "dwp":
        return to_bayesian(net, prior)
    return to_bayesian(net, table, default=None, strict=True, bound=bound, kernels_per_step=kernels_per_step,
                       mc_samples=mc_samples)
