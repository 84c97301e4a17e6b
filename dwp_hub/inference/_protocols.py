"""What the pieces of :mod:`dwp_hub.inference` need of each other, at the bottom of its import order.

``_protocols`` → ``fast`` → ``priors`` → ``layers`` → ``objective`` → ``vi``: each module imports
only modules to its left. A prior's KL needs a few things of a Bayesian layer, named here as the
:class:`VariationalLayer` protocol (no import of the layer class); options that were bare strings
are ``str`` Enums.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from dwp_hub.errors import ConfigError


class _StrEnum(str, Enum):
    """A ``str`` Enum whose :meth:`parse` gives a :class:`ConfigError` listing the valid values."""

    @classmethod
    def parse(cls, value: Any) -> Any:
        try:
            return cls(getattr(value, "value", value))
        except ValueError:
            label = cls.__name__.lower()
            raise ConfigError(f"Unknown {label} {value!r}; use one of {', '.join(m.value for m in cls)}.") from None

    def __str__(self) -> str:
        return str(self.value)


class Family(_StrEnum):
    """Variational family of a Bayesian layer.

    ``gaussian``: q(w) = N(θ, σ²), parameters θ and log σ². ``variational-dropout``: q(w) = N(θ, α·θ²),
    parameters θ and logit α (α = sigmoid(a) ∈ (0, 1); Kingma et al. 2015).
    """

    GAUSSIAN = "gaussian"
    VARIATIONAL_DROPOUT = "variational-dropout"


class SamplingMode(_StrEnum):
    """How a stochastic Bayesian layer draws its output (not to be confused with :class:`Sampler`, how the fast
    bound picks its kernels).

    ``local``: local reparameterisation (Kingma et al. 2015), independent noise per example and output unit,
    a mean and a variance operation per pass; the training default (lower-variance gradients).
    ``weights``: one weight sample θ + σ·ε per forward pass, shared by the batch, then one operation; the
    exact posterior predictive (outputs of one example correlated through the shared weights, as they are
    under q) at the cost of a deterministic pass; the default of :func:`~dwp_hub.inference.predict`.
    """

    LOCAL = "local"
    WEIGHTS = "weights"


class Bound(_StrEnum):
    """Estimator of a deep weight prior's kernel term: every kernel every step, or a subsample."""

    FULL = "full"
    FAST = "fast"


class Sampler(_StrEnum):
    """How the fast bound picks its kernels: reshuffled cycles, or a fresh uniform subset each step."""

    CYCLE = "cycle"
    UNIFORM = "uniform"


class Precision(_StrEnum):
    """Arithmetic of a VI step's forward pass: ``fp32``, or ``bf16`` autocast (the model's convolutions
    and matmuls in bfloat16; parameters, KL terms, optimiser and evaluation stay fp32). On a CPU, bf16
    is offered only where it is native (AVX512-BF16 or AMX)."""

    FP32 = "fp32"
    BF16 = "bf16"


@runtime_checkable
class VariationalLayer(Protocol):
    """What a prior needs of a Bayesian layer (:class:`~dwp_hub.inference.layers.BayesConv2d` is one).

    Per-layer state of a prior's estimator (the fast bound's sampler position and control-variate
    memory) lives in the layer's buffers, registered through ``register_buffer`` when the prior is
    attached, so ``state_dict`` and checkpoints carry it.
    """

    weight: Tensor
    kernel_size: tuple[int, ...]
    family: Family

    @property
    def n_kernels(self) -> int: ...

    def log_variance(self) -> Tensor: ...

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None: ...
