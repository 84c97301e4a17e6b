"""A deep weight prior as a ``torch.distributions.Distribution`` (for pyro and code that expects one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

if TYPE_CHECKING:  # pragma: no cover - prior.py imports this module at run time
    from dwp_hub.model.prior import DeepWeightPrior


class DeepWeightPriorDistribution(Distribution):
    """p(w) = ∫ p(w|z) N(z|0, I) dz over k x k kernels, with ``batch_shape`` independent copies.

    Shapes follow ``torch.distributions``: ``event_shape`` is ``(1, k, k)`` (one kernel, as
    :meth:`DeepWeightPrior.sample` returns them), ``sample(sample_shape)`` returns
    ``sample_shape + batch_shape + event_shape`` and ``log_prob(value)`` takes such a tensor and returns
    ``sample_shape + batch_shape``.

    ``log_prob`` is a **stochastic** importance-weighted estimate of log p(w) (a lower bound in
    expectation, tight as ``k`` grows) with ``k`` samples of the encoder r(z|w); pass a ``generator``
    to make it reproducible.

    Args:
        prior: the loaded :class:`~dwp_hub.model.prior.DeepWeightPrior`.
        batch_shape: independent kernels per draw (e.g. a conv weight's ``(out, in)``).
        k: importance samples of :meth:`log_prob`.
        noise: ``sample`` adds the decoder's noise (a true sample of p(w)); ``False`` gives decoder
            means (the paper's initialisation).
        generator: default source of randomness of ``sample`` and ``log_prob``.
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.independent(constraints.real, 3)
    has_rsample = True

    def __init__(self, prior: DeepWeightPrior, batch_shape: torch.Size | tuple[int, ...] = torch.Size(), *,
                 k: int = 1000, noise: bool = True, generator: torch.Generator | None = None,
                 validate_args: bool | None = None) -> None:
        self.prior = prior
        self.k = int(k)
        self.noise = bool(noise)
        self.generator = generator
        super().__init__(torch.Size(batch_shape), prior.event_shape, validate_args=validate_args)

    def expand(self, batch_shape: torch.Size | tuple[int, ...], _instance: Any = None) -> DeepWeightPriorDistribution:
        return DeepWeightPriorDistribution(self.prior, torch.Size(batch_shape), k=self.k, noise=self.noise,
                                           generator=self.generator, validate_args=False)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError("The mean of a deep weight prior has no closed form; average samples instead.")

    def _draw(self, sample_shape: torch.Size | tuple[int, ...], grad: bool,
              generator: torch.Generator | None) -> Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        gen = generator if generator is not None else self.generator
        if grad:
            return self.prior.rsample(shape, generator=gen, noise=self.noise)
        return self.prior.sample(shape, generator=gen, noise=self.noise)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
               generator: torch.Generator | None = None) -> Tensor:
        """Kernels ``sample_shape + batch_shape + (1, k, k)``, without gradients."""
        return self._draw(sample_shape, False, generator)

    def rsample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
                generator: torch.Generator | None = None) -> Tensor:
        """Like :meth:`sample`, differentiable in the prior's parameters (when unfrozen)."""
        return self._draw(sample_shape, True, generator)

    def log_prob(self, value: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Stochastic importance-weighted estimate of log p(value) (``k`` samples), nats per kernel."""
        return self.prior.log_prob(value, k=self.k, generator=generator if generator is not None else self.generator)

    def __repr__(self) -> str:
        return (f"DeepWeightPriorDistribution({self.prior.card.spec}, batch_shape={tuple(self.batch_shape)}, "
                f"event_shape={tuple(self.event_shape)})")
