"""Initialise convolution weights from deep weight priors, in the style of ``torch.nn.init``.

Behaviour by layer type (documented and tested):

* ``nn.Conv2d`` and ``nn.ConvTranspose2d`` with square ``k x k`` kernels: every 2-D kernel slice
  of the weight is drawn independently from the prior, whatever the channel counts.
* Grouped (``groups > 1``) and dilated (``dilation != 1``) convolutions: ``init_`` raises
  :class:`~dwp_hub.errors.UnsupportedLayerError` (the priors were learned on dense, undilated
  filters) unless ``allow_grouped`` / ``allow_dilated`` is passed; ``init_model`` skips them and
  says so in its report.
* Non-square kernels, or a kernel size with no prior: ``init_`` raises; ``init_model`` skips.
* Biases are left untouched.

Scale policy:

* ``scale="prior"`` (default, the paper's choice): kernels keep the prior's own scale.
* ``scale="fan_in"``: each layer's kernels are rescaled so that the weight's empirical standard
  deviation is ``gain / sqrt(fan_in)`` (``gain=sqrt(2)`` matches Kaiming-normal for ReLU nets).

Devices and dtypes:

* Kernels are drawn on the prior's device and in its dtype (with ``generator``), then moved and
  cast to the weight's device and dtype: a float32 prior initialises a float64 (or bfloat16)
  model, and a CPU prior a model on another device. For speed, load the prior where the model
  lives (``dwp_hub.load(spec, device=...)``).
* ``generator`` must live on the prior's device (``torch.Generator(device=prior.device)``); a
  mismatch, or a prior on the ``meta`` device (no weights), raises ``ValueError`` before any
  weight is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.model.prior import DeepWeightPrior
from dwp_hub.registry.defaults import DEFAULT_PRIORS

#: The priors ``init_model(priors="auto")`` uses for each kernel size.
AUTO_PRIORS: dict[int, str] = DEFAULT_PRIORS  # the one home of the defaults: dwp_hub/registry/defaults.py

Scale = Literal["prior", "fan_in"]
_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _check_layer(conv: nn.Module, prior: DeepWeightPrior, allow_grouped: bool, allow_dilated: bool) -> None:
    k = prior.kernel_size
    ks = tuple(conv.kernel_size)
    if ks[0] != ks[1]:
        raise UnsupportedLayerError(f"{type(conv).__name__} has non-square kernels {ks}; deep weight priors cover square k x k kernels only.")
    if ks != (k, k):
        raise UnsupportedLayerError(f"{type(conv).__name__} has {ks[0]}x{ks[1]} kernels but {prior.card.spec} is a {k}x{k} prior.")
    if conv.groups != 1 and not allow_grouped:
        raise UnsupportedLayerError(
            f"{type(conv).__name__} is grouped (groups={conv.groups}); the prior was learned on dense filters. "
            "Pass allow_grouped=True to initialise each slice anyway."
        )
    if tuple(conv.dilation) != (1, 1) and not allow_dilated:
        raise UnsupportedLayerError(
            f"{type(conv).__name__} is dilated (dilation={tuple(conv.dilation)}); the prior was learned on undilated "
            "filters. Pass allow_dilated=True to initialise it anyway."
        )


def _check_devices(prior: DeepWeightPrior, generator: torch.Generator | None) -> None:
    if prior.device.type == "meta":
        raise ValueError(f"{prior.card.spec} is on the meta device and holds no weights; load it on a real "
                         "device with dwp_hub.load(spec, device=...).")
    if generator is not None and generator.device.type != prior.device.type:
        raise ValueError(
            f"The generator is on {generator.device} but {prior.card.spec} is on {prior.device}; kernels are drawn "
            f"on the prior's device. Use torch.Generator(device='{prior.device}').manual_seed(seed), "
            "or move the prior with prior.to(device)."
        )


@torch.no_grad()
def init_(
    conv_or_weight: nn.Module | Tensor,
    prior: DeepWeightPrior,
    *,
    generator: torch.Generator | None = None,
    noise: bool = False,
    scale: Scale = "prior",
    gain: float = math.sqrt(2.0),
    allow_grouped: bool = False,
    allow_dilated: bool = False,
) -> Tensor:
    """Fill a conv layer's weight (or a weight tensor ``[out, in, k, k]``) in place with prior samples.

    Args:
        conv_or_weight: an ``nn.Conv2d`` / ``nn.ConvTranspose2d`` or its weight tensor.
        prior: a loaded :class:`DeepWeightPrior` with the layer's kernel size.
        generator: randomness; the same seed gives the same weights.
        noise: add decoder noise (``False``: decoder means of z ~ N(0, I), the paper's choice).
        scale: ``"prior"`` keeps the prior's scale; ``"fan_in"`` rescales to ``gain/sqrt(fan_in)``.

    Returns:
        The weight tensor, for chaining like ``torch.nn.init``.

    Raises:
        UnsupportedLayerError: the layer is not a dense, undilated, square conv of the prior's size.
        ValueError: a bad ``scale``, or ``generator`` not on the prior's device.
    """
    if isinstance(conv_or_weight, nn.Module):
        if not isinstance(conv_or_weight, _CONVS):
            raise UnsupportedLayerError(f"init_ takes nn.Conv2d or nn.ConvTranspose2d, got {type(conv_or_weight).__name__}.")
        _check_layer(conv_or_weight, prior, allow_grouped, allow_dilated)
        weight = conv_or_weight.weight
    else:
        weight = conv_or_weight
    if scale not in ("prior", "fan_in"):
        raise ValueError(f"scale must be 'prior' or 'fan_in', got {scale!r}.")
    _check_devices(prior, generator)
    # Fast path: decoder means written straight into the weight (same random stream).
    if noise or not prior._means_into(weight, generator):
        weight.copy_(prior.sample_like(weight, generator=generator, noise=noise))
    if scale == "fan_in":
        fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
        std = weight.std()
        weight.mul_(gain / math.sqrt(fan_in) / std.clamp_min(torch.finfo(weight.dtype).tiny))
    return weight


@dataclass(frozen=True)
class LayerInit:
    """One conv layer that ``init_model`` initialised."""

    name: str
    shape: tuple[int, ...]
    prior: str


@dataclass
class InitReport:
    """Which layers ``init_model`` touched, and which it skipped and why."""

    initialized: list[LayerInit] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.initialized)

    def __str__(self) -> str:
        lines = [f"initialised {len(self.initialized)} layer(s), skipped {len(self.skipped)}"]
        lines += [f"  + {li.name:<30} {str(list(li.shape)):<18} <- {li.prior}" for li in self.initialized]
        lines += [f"  - {name:<30} {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _prior_table(priors: str | dict[int, DeepWeightPrior | str] | DeepWeightPrior | list[DeepWeightPrior],
                 sizes: set[int]) -> dict[int, DeepWeightPrior]:
    from dwp_hub._api import load
    from dwp_hub.errors import PriorNotFoundError

    if isinstance(priors, DeepWeightPrior):
        return {priors.kernel_size: priors}
    if isinstance(priors, list):
        return {p.kernel_size: p for p in priors}
    if priors == "auto":
        table: dict[int, DeepWeightPrior] = {}
        for k in sorted(sizes):
            if k in AUTO_PRIORS:
                try:
                    table[k] = load(AUTO_PRIORS[k])
                except PriorNotFoundError:
                    continue
        return table
    if isinstance(priors, dict):
        out = {}
        for k, p in priors.items():
            prior = load(p) if isinstance(p, str) else p
            if prior.kernel_size != int(k):
                raise UnsupportedLayerError(f"priors[{k}] is {prior.card.spec}, a {prior.kernel_size}x{prior.kernel_size} prior.")
            out[int(k)] = prior
        return out
    raise TypeError("priors must be 'auto', a DeepWeightPrior, a list of them, or a {kernel_size: prior} dict.")


def init_model(
    model: nn.Module,
    priors: str | dict[int, DeepWeightPrior | str] | DeepWeightPrior | list[DeepWeightPrior] = "auto",
    *,
    generator: torch.Generator | None = None,
    noise: bool = False,
    scale: Scale = "prior",
    gain: float = math.sqrt(2.0),
    strict: bool = False,
) -> InitReport:
    """Initialise every square, ungrouped, undilated conv layer whose kernel size has a prior.

    Args:
        priors: ``"auto"`` (the registry's :data:`AUTO_PRIORS` for each kernel size present),
            one prior, a list, or ``{kernel_size: prior or spec}``.
        strict: raise if any conv layer is left uninitialised.

    Returns:
        An :class:`InitReport` naming the layers touched and those skipped with the reason.
    """
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, _CONVS)]
    if not convs:
        raise UnsupportedLayerError(f"{type(model).__name__} has no Conv2d/ConvTranspose2d layers to initialise.")
    table = _prior_table(priors, {m.kernel_size[0] for _, m in convs if m.kernel_size[0] == m.kernel_size[1]})
    report = InitReport()
    for name, conv in convs:
        ks = tuple(conv.kernel_size)
        reason = None
        if ks[0] != ks[1]:
            reason = f"non-square kernel {ks[0]}x{ks[1]}"
        elif ks[0] not in table:
            reason = f"no prior for {ks[0]}x{ks[1]} kernels"
        elif conv.groups != 1:
            reason = f"grouped convolution (groups={conv.groups})"
        elif tuple(conv.dilation) != (1, 1):
            reason = f"dilated convolution (dilation={tuple(conv.dilation)})"
        elif priors == "auto" and table[ks[0]].mismatch(conv):  # explicit choices are the user's to make
            reason = f"auto: {table[ks[0]].mismatch(conv)}"
        if reason:
            report.skipped.append((name, reason))
            continue
        prior = table[ks[0]]
        init_(conv, prior, generator=generator, noise=noise, scale=scale, gain=gain)
        report.initialized.append(LayerInit(name, tuple(conv.weight.shape), prior.card.spec))
    if strict and report.skipped:
        raise UnsupportedLayerError("Layers left uninitialised:\n" + "\n".join(f"  {n}: {r}" for n, r in report.skipped))
    return report
