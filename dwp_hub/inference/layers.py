"""Bayesian convolution layers and the conversion of any ``nn.Module`` to them.

:class:`BayesConv2d` holds a fully factorised Gaussian q(w) per weight, in one of two variational
families (:class:`Family`):

* ``"gaussian"`` (the paper's family for the standard-normal and deep-weight-prior runs, Section
  4.1): q(w) = N(θ, σ²) with the *additive* parameterisation of Molchanov et al. (2017) — the
  trainable parameters are the mean θ (``weight``) and ``log_sigma2`` (initialised to −10);
* ``"variational-dropout"`` (the paper's family for its log-uniform runs; Kingma et al. 2015):
  q(w) = N(θ, α·θ²) with α = sigmoid(a) ∈ (0, 1) per weight (``logit_alpha`` = a, initialised to
  −2, α ≈ 0.12).

By default both sample with the *local reparameterisation* trick of Kingma et al. (2015): the layer
samples its pre-activations,

    mean = conv(x, θ) + b,    var = conv(x², σ²),    out = mean + sqrt(var) · ε,

instead of a weight sample (σ² = α·θ² for variational dropout); ``sampling="weights"`` draws one weight
sample θ + σ·ε per forward pass instead (:class:`SamplingMode`). Biases are deterministic. Each layer
carries its prior (a :class:`~dwp_hub.inference.priors.PriorKL` submodule, so a deep weight prior's trainable reverse
model is part of ``model.parameters()``).

Modes: ``stochastic`` (default, in both train and eval mode; used for training and the Monte Carlo
ensemble) and deterministic (``stochastic=False``: the layer uses the means θ). Switch a whole
model with :func:`set_stochastic` or temporarily with :func:`mean_weights`. A stochastic layer samples by
local reparameterisation (``sampling="local"``, the default) or draws one weight sample per pass
(``sampling="weights"``: the exact posterior predictive at the cost of one deterministic operation);
switch temporarily with :func:`sampling_mode`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.inference._protocols import Family, SamplingMode
from dwp_hub.inference.priors import PRIOR_CLASSES, DeepWeightPriorKL, PriorKL, auto_prior, make_prior
from dwp_hub.model.prior import DeepWeightPrior

#: log σ² of every weight at initialisation (the paper's value).
LOG_SIGMA2_INIT = -10.0
#: a = logit α of every weight of the variational-dropout family at initialisation (the paper's: α ≈ 0.12).
LOGIT_ALPHA_INIT = -2.0
#: Added to θ² inside logarithms of the variational-dropout variance α·θ² (θ may be exactly 0).
_THETA2_EPS = 1e-16
#: Added to the output variance before the square root: conv(x², σ²) is exactly 0 where the input
#: patch is all zeros (MNIST borders), and d sqrt(v)/dv is infinite at 0.
VAR_EPS = 1e-8


class BayesianLayer(nn.Module):
    """What every Bayesian layer shares: the variational parameters of its weight (mean θ and log σ², or
    θ and logit α), its prior, and the sampling mode. Subclasses define the deterministic op
    (:meth:`_op`) and the weight's shape; the forward pass is the local reparameterisation
    ``op(x, θ) + b + sqrt(op(x², σ²)) · ε`` (``sampling="local"``, the default) or ``op(x, θ + σ·ε) + b``
    with one weight draw for the whole batch (``sampling="weights"``)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    #: sample the outputs (``True``, the default) or use the means θ (``False``)
    stochastic: bool = True
    _sampling: SamplingMode = SamplingMode.LOCAL  # behind the ``sampling`` property
    family: Family
    kernel_size: tuple[int, ...]

    def _init_variational(self, weight: Tensor, bias: Tensor | None, family: Family | str, log_sigma2_init: float,
                          logit_alpha_init: float) -> None:
        self.family = Family.parse(family)
        self.weight = nn.Parameter(weight.detach().clone())
        if self.family is Family.GAUSSIAN:
            self.log_sigma2 = nn.Parameter(torch.full_like(weight, float(log_sigma2_init)))
        else:
            self.logit_alpha = nn.Parameter(torch.full_like(weight, float(logit_alpha_init)))
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None
        self.prior: PriorKL | None = None

    @property
    def sampling(self) -> SamplingMode:
        """How a stochastic pass samples (:class:`SamplingMode`; a string is parsed on assignment)."""
        return self._sampling

    @sampling.setter
    def sampling(self, mode: SamplingMode | str) -> None:
        self._sampling = SamplingMode.parse(mode)

    def set_prior(self, prior: PriorKL | None) -> BayesianLayer:
        """Attach ``prior`` (checked against this layer: family, kernel size, square kernels); the
        prior registers the per-layer state of its estimator as buffers of this layer."""
        if prior is not None:
            prior.check(self)
            prior.prepare(self)
        self.prior = prior
        return self

    # -- the variational distribution ---------------------------------------------------
    @property
    def sigma2(self) -> Tensor:
        """σ² per weight (α·θ² for variational dropout)."""
        if self.family is Family.GAUSSIAN:
            return self.log_sigma2.exp()
        return torch.sigmoid(self.logit_alpha) * self.weight**2

    def log_variance(self) -> Tensor:
        """log σ² per weight (log α + log θ² for variational dropout)."""
        if self.family is Family.GAUSSIAN:
            return self.log_sigma2
        return F.logsigmoid(self.logit_alpha) + torch.log(self.weight**2 + _THETA2_EPS)

    @property
    def alpha(self) -> Tensor:
        """α = σ²/θ² per weight (the dropout rate's odds): sigmoid(a) for variational dropout."""
        if self.family is Family.VARIATIONAL_DROPOUT:
            return torch.sigmoid(self.logit_alpha)
        return self.log_sigma2.exp() / (self.weight**2 + _THETA2_EPS)

    @property
    def n_kernels(self) -> int:
        """Number of 2-D kernel slices (``out * in/groups``; for a linear layer, its weights)."""
        return self.weight.shape[0] * self.weight.shape[1]

    @property
    def sigma(self) -> Tensor:
        """σ per weight, computed without a square root of σ² (finite gradients where θ = 0)."""
        if self.family is Family.GAUSSIAN:
            return (0.5 * self.log_sigma2).exp()
        return torch.sigmoid(self.logit_alpha).sqrt() * self.weight.abs()

    def sample_weight(self, generator: torch.Generator | None = None) -> Tensor:
        """One reparameterised weight sample θ + σ·ε (differentiable in the variational parameters)."""
        eps = torch.randn(self.weight.shape, generator=generator, device=self.weight.device, dtype=self.weight.dtype)
        return self.weight + self.sigma * eps

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.stochastic and self.sampling is SamplingMode.WEIGHTS:
            return self._op(x, self.sample_weight(), self.bias)
        mean = self._op(x, self.weight, self.bias)
        if not self.stochastic:
            return mean
        var = self._op(x * x, self.sigma2, None)
        return mean + (var + VAR_EPS).sqrt() * torch.randn_like(mean)

    def kl(self) -> Tensor:
        """This layer's KL term (summed over its weights); 0 without a prior."""
        if self.prior is None:
            return self.weight.new_zeros(())
        return self.prior.kl(self)


def _mode_repr(layer: BayesianLayer) -> str:
    if not layer.stochastic:
        return ", deterministic"
    return "" if layer.sampling is SamplingMode.LOCAL else f", sampling={layer.sampling}"


class BayesConv2d(BayesianLayer):
    """A 2-D convolution with a fully factorised Gaussian over its weights.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode: as ``nn.Conv2d``.
        family: ``"gaussian"`` (θ, log σ²) or ``"variational-dropout"`` (θ, logit α).
        log_sigma2_init: initial log σ² of every weight (−10, the paper's value; gaussian family).
        logit_alpha_init: initial logit α of every weight (−2, the paper's value; variational dropout).
        prior: the :class:`~dwp_hub.inference.priors.PriorKL` of this layer (``None``: no KL term;
            set one later with :meth:`set_prior`).

    Attributes:
        weight: the variational means θ, ``[out, in/groups, kh, kw]``.
        log_sigma2: log σ² per weight, same shape (gaussian family).
        logit_alpha: a = logit α per weight, same shape (variational-dropout family).
        bias: deterministic bias (or ``None``).
        prior: the layer's prior and KL estimator.
        stochastic: sample the outputs (``True``) or use the means (``False``).
        sampling: how a stochastic pass samples: ``"local"`` (local reparameterisation, the default) or
            ``"weights"`` (one weight draw per pass, shared by the batch); see :class:`SamplingMode`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, family: Family | str = Family.GAUSSIAN,
                 log_sigma2_init: float = LOG_SIGMA2_INIT, logit_alpha_init: float = LOGIT_ALPHA_INIT,
                 prior: PriorKL | None = None, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        proto = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                          padding_mode, device=device, dtype=dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = tuple(proto.kernel_size)
        self.stride, self.padding, self.dilation = proto.stride, proto.padding, proto.dilation
        self.groups, self.padding_mode = groups, padding_mode
        self._reversed_padding_repeated_twice = proto._reversed_padding_repeated_twice
        self._init_variational(proto.weight, proto.bias, family, log_sigma2_init, logit_alpha_init)
        if prior is not None:
            self.set_prior(prior)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, family: Family | str = Family.GAUSSIAN,
                  log_sigma2_init: float = LOG_SIGMA2_INIT, logit_alpha_init: float = LOGIT_ALPHA_INIT,
                  prior: PriorKL | None = None) -> BayesConv2d:
        """A Bayesian copy of ``conv`` whose means are ``conv``'s weights (bias copied too)."""
        if not isinstance(conv, nn.Conv2d):
            raise UnsupportedLayerError(f"from_conv takes an nn.Conv2d, got {type(conv).__name__}.")
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode, family=family,
                    log_sigma2_init=log_sigma2_init, logit_alpha_init=logit_alpha_init,
                    device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(conv.weight)
            if conv.bias is not None:
                layer.bias.copy_(conv.bias)  # type: ignore[union-attr]
        if prior is not None:
            layer.set_prior(prior)
        return layer

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    _op = _conv

    def to_conv(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` holding the means (for export or deterministic use)."""
        conv = nn.Conv2d(self.in_channels, self.out_channels, self.kernel_size, self.stride, self.padding,
                         self.dilation, self.groups, self.bias is not None, self.padding_mode,
                         device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias)  # type: ignore[union-attr]
        return conv

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.family is not Family.GAUSSIAN:
            s += f", family={self.family.value}"
        return s + _mode_repr(self)


class BayesLinear(BayesianLayer):
    """A linear layer with a fully factorised Gaussian over its weights (same families, priors and
    sampling modes as :class:`BayesConv2d`; kernel-shaped priors do not apply)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 family: Family | str = Family.GAUSSIAN, log_sigma2_init: float = LOG_SIGMA2_INIT,
                 logit_alpha_init: float = LOGIT_ALPHA_INIT, prior: PriorKL | None = None, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        proto = nn.Linear(in_features, out_features, bias, device=device, dtype=dtype)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = ()
        self._init_variational(proto.weight, proto.bias, family, log_sigma2_init, logit_alpha_init)
        if prior is not None:
            self.set_prior(prior)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, family: Family | str = Family.GAUSSIAN,
                    log_sigma2_init: float = LOG_SIGMA2_INIT, logit_alpha_init: float = LOGIT_ALPHA_INIT) -> BayesLinear:
        """A Bayesian copy of ``linear`` whose means are its weights (bias copied too)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, family=family,
                    log_sigma2_init=log_sigma2_init, logit_alpha_init=logit_alpha_init,
                    device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(linear.weight)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)  # type: ignore[union-attr]
        return layer

    def _op(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the means."""
        out = nn.Linear(self.in_features, self.out_features, self.bias is not None, device=self.weight.device,
                        dtype=self.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.weight)
            if self.bias is not None:
                out.bias.copy_(self.bias)  # type: ignore[union-attr]
        return out

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        if self.family is not Family.GAUSSIAN:
            s += f", family={self.family.value}"
        return s + _mode_repr(self)


# -- model-level helpers -------------------------------------------------------------------
def bayesian_layers(model: nn.Module) -> list[tuple[str, BayesianLayer]]:
    """``(name, layer)`` for every Bayesian layer (:class:`BayesConv2d`, :class:`BayesLinear`) in ``model``,
    in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, BayesianLayer)]


def set_stochastic(model: nn.Module, stochastic: bool = True) -> nn.Module:
    """Put every Bayesian layer of ``model`` in stochastic (sampling) or deterministic (means) mode."""
    for _, layer in bayesian_layers(model):
        layer.stochastic = stochastic
    return model


@contextmanager
def _layers_set(model: nn.Module, attr: str, value: Any) -> Iterator[nn.Module]:
    """Within the block every Bayesian layer's ``attr`` is ``value``; the previous values are restored after."""
    layers = [layer for _, layer in bayesian_layers(model)]
    before = [getattr(layer, attr) for layer in layers]
    try:
        for layer in layers:
            setattr(layer, attr, value)
        yield model
    finally:
        for layer, old in zip(layers, before):
            setattr(layer, attr, old)


def mean_weights(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Within the block every Bayesian layer uses its means; the previous modes are restored after."""
    return _layers_set(model, "stochastic", False)


def sampling_mode(model: nn.Module, sampling: SamplingMode | str) -> AbstractContextManager[nn.Module]:
    """Within the block every Bayesian layer samples by ``sampling`` (:class:`SamplingMode`: ``"local"`` or
    ``"weights"``); the previous modes are restored after."""
    return _layers_set(model, "sampling", SamplingMode.parse(sampling))


# -- conversion ----------------------------------------------------------------------------
#: What a prior entry may be: a name ("standard-normal", "log-uniform", "dwp" = the hub prior for the
#: layer's kernel size, "none"), a hub spec ("notmnist-5x5@1.0.0"), a loaded DeepWeightPrior, a
#: PriorKL instance (shared by every layer it is given to), or None (leave the layer deterministic).
PriorEntry = Union[str, DeepWeightPrior, PriorKL, None]
PriorsArg = Union[PriorEntry, Mapping[Union[int, str], PriorEntry]]


@dataclass
class ConversionReport:
    """What :func:`to_bayesian` did to each conv layer."""

    converted: list[tuple[str, tuple[int, ...], str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.converted)

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} conv layer(s), left {len(self.skipped)} deterministic"]
        lines += [f"  + {n:<30} {str(list(s)):<18} prior {p}" for n, s, p in self.converted]
        lines += [f"  - {n:<30} {why}" for n, why in self.skipped]
        return "\n".join(lines)


def _lookup(priors: PriorsArg, name: str, conv: nn.Conv2d) -> tuple[bool, PriorEntry]:
    """The entry for one layer: exact name, then fnmatch patterns (first match), then kernel size."""
    if not isinstance(priors, Mapping):
        return True, priors
    if name in priors:
        return True, priors[name]
    for key, value in priors.items():
        if isinstance(key, str) and not key.isdigit() and fnmatch.fnmatchcase(name, key):
            return True, value
    ks = getattr(conv, "kernel_size", None)  # a linear layer has none: names and patterns only
    if ks is not None and ks[0] == ks[1]:
        for key in (ks[0], str(ks[0]), f"{ks[0]}x{ks[0]}"):
            if key in priors:
                return True, priors[key]
    return False, None


def to_bayesian(
    model: nn.Module,
    priors: PriorsArg = "auto",
    *,
    default: PriorEntry = "standard-normal",
    family: Family | str = "auto",
    log_sigma2_init: float = LOG_SIGMA2_INIT,
    logit_alpha_init: float = LOGIT_ALPHA_INIT,
    bound: str = "fast",
    kernels_per_step: int | None = None,
    mc_samples: int = 1,
    strict: bool = False,
    linear: bool = False,
) -> nn.Module:
    """Replace the ``nn.Conv2d`` layers of ``model`` (and with ``linear=True`` its ``nn.Linear`` layers) by
    :class:`BayesConv2d` / :class:`BayesLinear` with per-layer priors.

    The means start from each layer's current weights (biases copied); ``log σ²`` from
    ``log_sigma2_init``. Other layers (batch norm, transposed convs; linear unless ``linear``) stay
    deterministic. Kernel-shaped priors (``"auto"``, deep weight priors) apply only to convs whose
    kernels fit them; linear layers get Gaussian-family priors (``default`` when ``"auto"``).

    Args:
        model: any module; converted in place (a bare ``nn.Conv2d`` is returned converted).
        priors: how layers get priors:

            * ``"auto"``: the deep weight prior for the layer's kernel size
              (:data:`dwp_hub.init.AUTO_PRIORS`, e.g. ``notmnist-7x7`` / ``notmnist-5x5``) when it
              is available, else ``default``;
            * one entry for every layer (``"standard-normal"``, ``"log-uniform"``, ``"dwp"``, a hub
              spec, a loaded ``DeepWeightPrior``, a ``PriorKL``);
            * a mapping from layer name (exact, or an fnmatch pattern such as ``"layer1.*"``) or
              kernel size (``5``, ``"5"``, ``"5x5"``) to an entry. Names win over patterns, patterns
              over kernel sizes; unmatched layers get ``default``. An entry ``None`` / ``"none"``
              leaves the layer a plain ``nn.Conv2d``.
        default: entry for layers that ``priors`` does not cover (``None`` leaves them as they are).
        family: the variational family of every converted layer: ``"auto"`` (the family each
            prior is defined on: variational dropout for ``"log-uniform"``, the Gaussian family for
            the others), ``"gaussian"`` or ``"variational-dropout"``. A prior that is not defined on
            the family given is an error that names the valid combinations.
        log_sigma2_init: initial log σ² (−10, the paper's value; gaussian family).
        logit_alpha_init: initial logit α (−2, the paper's value; variational-dropout family).
        bound: for deep weight priors, ``"fast"`` (subsampled, see
            :class:`~dwp_hub.inference.priors.DeepWeightPriorKL`) or ``"full"`` (all kernels every step).
        kernels_per_step: kernels per layer and step of the fast bound (default
            :data:`~dwp_hub.inference.priors.DEFAULT_KERNELS_PER_STEP`).
        mc_samples: Monte Carlo samples (w, z) per kernel of the deep weight prior bound.
        strict: raise if a conv layer is left deterministic.
        linear: also convert ``nn.Linear`` layers (the paper's net keeps its classifier deterministic).

    Returns:
        The converted model (same object unless ``model`` itself is an ``nn.Conv2d``). Its
        :class:`ConversionReport` is at ``model.dwp_conversion`` (``to_bayesian_report(model)``).

    Raises:
        UnsupportedLayerError: the model has no ``nn.Conv2d``; a prior's kernel size does not match
            its layer; ``"dwp"`` requested for a kernel size with no hub prior; ``strict`` and some
            layer left deterministic.
    """
    convs: list[tuple[str, nn.Module]] = list(_plain_convs(model, linear))
    _check_mapping_keys(priors, convs)
    if not convs:
        if bayesian_layers(model):
            raise UnsupportedLayerError(f"{type(model).__name__} is already Bayesian (it has BayesConv2d layers "
                                        "and no nn.Conv2d left to convert).")
        raise UnsupportedLayerError(
            f"{type(model).__name__} has no nn.Conv2d layers; to_bayesian converts convolutions only "
            "(deep weight priors are priors over conv kernels)."
        )
    report = ConversionReport()
    cache: dict[Any, Any] = {}
    options = {"bound": bound, "kernels_per_step": kernels_per_step, "mc_samples": mc_samples}
    replacements: list[tuple[str, BayesianLayer]] = []
    for name, conv in convs:
        found, entry = _lookup(priors, name, conv)
        if not found:
            entry = default
        note = ""
        if isinstance(entry, str) and entry == "auto":
            entry, note = _auto_entry_why(conv, default, cache)
        if entry is None or (isinstance(entry, str) and entry.lower() == "none"):
            report.skipped.append((name, "no prior assigned (left deterministic)"))
            continue
        if isinstance(conv, nn.Linear) and (not isinstance(entry, (str, PriorKL)) or isinstance(entry, DeepWeightPriorKL)
                                            or isinstance(entry, str) and PRIOR_CLASSES.get(entry.strip().lower())
                                            in (None, DeepWeightPriorKL)):
            raise UnsupportedLayerError(f"Layer {name!r} is linear: a deep weight prior is a prior over conv kernels; "
                                        "give it 'standard-normal', 'log-uniform' or another Gaussian-family prior.")
        try:
            prior = make_prior(entry, conv, cache=cache, **options)
        except UnsupportedLayerError as err:
            raise UnsupportedLayerError(f"Layer {name!r}: {err}") from err
        fam = Family.parse(prior.families[0] if family == "auto" else family)
        layer: BayesianLayer
        if isinstance(conv, nn.Linear):
            layer = BayesLinear.from_linear(conv, family=fam, log_sigma2_init=log_sigma2_init,
                                            logit_alpha_init=logit_alpha_init)
        else:
            layer = BayesConv2d.from_conv(conv, family=fam, log_sigma2_init=log_sigma2_init,  # type: ignore[arg-type]
                                          logit_alpha_init=logit_alpha_init)
        try:
            layer.set_prior(prior)
        except UnsupportedLayerError as err:
            raise UnsupportedLayerError(f"Layer {name!r}: {err}") from err
        replacements.append((name, layer))
        how = prior.describe() + ("" if fam is Family.GAUSSIAN else f" [{fam.value}]") + (f" ({note})" if note else "")
        report.converted.append((name, tuple(layer.weight.shape), how))
    if strict and report.skipped:
        raise UnsupportedLayerError("Conv layers left deterministic:\n" +
                                    "\n".join(f"  {n}: {r}" for n, r in report.skipped))
    root = model
    for name, layer in replacements:
        if name == "":
            root = layer
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer)
    object.__setattr__(root, "dwp_conversion", report)
    return root


def _check_mapping_keys(priors: PriorsArg, layers: list[tuple[str, nn.Module]]) -> None:
    """An explicit name or pattern key that matches no convertible layer is an error listing the names."""
    if not isinstance(priors, Mapping):
        return
    names = [n for n, _ in layers]
    sizes = {str(m.kernel_size[0]) for _, m in layers if isinstance(m, nn.Conv2d)}
    for key in priors:
        if isinstance(key, int) or (isinstance(key, str) and (key.isdigit() and key in sizes
                                                              or re.fullmatch(r"\d+x\d+", key))):
            continue  # kernel-size keys: a size may legitimately be absent
        if isinstance(key, str) and (key in names or any(fnmatch.fnmatchcase(n, key) for n in names)):
            continue
        shown = ", ".join(repr(n) for n in names[:40]) + (" ..." if len(names) > 40 else "")
        raise UnsupportedLayerError(f"The priors mapping names {key!r}, which matches no convertible layer. "
                                    f"Layers: {shown or 'none'}.")


def _plain_convs(model: nn.Module, linear: bool = False) -> list[tuple[str, nn.Module]]:
    """``nn.Conv2d`` (and with ``linear``, ``nn.Linear``) layers of ``model``, not descending into
    Bayesian layers (whose deep weight priors hold convolutional reverse models)."""
    out: list[tuple[str, nn.Module]] = []

    def visit(module: nn.Module, prefix: str) -> None:
        if isinstance(module, BayesianLayer):
            return
        if isinstance(module, nn.Conv2d) or (linear and isinstance(module, nn.Linear)):
            out.append((prefix, module))
            return
        for child_name, child in module.named_children():
            visit(child, f"{prefix}.{child_name}" if prefix else child_name)

    visit(model, "")
    return out


def _auto_entry_why(conv: nn.Conv2d, default: PriorEntry, cache: dict[Any, Any]) -> tuple[PriorEntry, str]:
    """The ``"auto"`` choice for ``conv`` and, when it falls back to ``default``, why."""
    if isinstance(conv, nn.Linear):
        return default, "auto: a linear layer (deep weight priors are over conv kernels)"
    ks = conv.kernel_size
    if ks[0] != ks[1]:
        return default, ""
    prior = auto_prior(ks[0], cache)
    if prior is None:
        return default, f"auto: no hub prior for {ks[0]}x{ks[1]} kernels"
    why = prior.mismatch(conv)
    if why:
        return default, f"auto: {why}"
    return prior, ""


def to_bayesian_report(model: nn.Module) -> ConversionReport | None:
    """The :class:`ConversionReport` of the last :func:`to_bayesian` call on ``model``."""
    return getattr(model, "dwp_conversion", None)
