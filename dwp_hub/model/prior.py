"""The loaded prior: a frozen kernel VAE that behaves like a distribution over kernels."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from torch.distributions import constraints

from dwp_hub.card import PriorCard
from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.model.distribution import DeepWeightPriorDistribution
from dwp_hub.model.vae import KernelVAE

_Shape = int | tuple[int, ...] | torch.Size
#: Kernels decoded per step when sampling many without gradients (keeps activations in cache).
_CHUNK = 32_768


class DeepWeightPrior(nn.Module):
    """p(w) = ∫ p(w|z) N(z|0, I) dz over ``k x k`` kernels, from a published card and weights.

    The module is frozen (eval mode, ``requires_grad=False``) unless :meth:`unfreeze` is called.
    Shapes follow ``torch.distributions``: ``sample(sample_shape)`` returns
    ``[*sample_shape, 1, k, k]`` (an int ``n`` gives ``[n, 1, k, k]``); ``event_shape`` is
    ``(1, k, k)``. Every random method takes a ``torch.Generator``.

    Attributes:
        card: the :class:`~dwp_hub.card.PriorCard`.
        vae: the underlying :class:`~dwp_hub.model.vae.KernelVAE`.
        source: where it was loaded from (registry folder or ``hf-hub:`` reference).
        commit: resolved Hub commit sha, when loaded from the Hub.
    """

    def __init__(self, card: PriorCard, vae: KernelVAE | None = None, source: str = "",
                 commit: str | None = None) -> None:
        super().__init__()
        self.card = card
        self.vae = vae if vae is not None else KernelVAE(card.arch)
        self.source = source
        self.commit = commit
        self.freeze()

    # -- state ---------------------------------------------------------------------------
    def freeze(self) -> DeepWeightPrior:
        """Eval mode and no gradients into the VAE parameters (the default)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def unfreeze(self) -> DeepWeightPrior:
        """Let gradients flow into the VAE parameters (for fine-tuning)."""
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    def train(self, mode: bool = True) -> DeepWeightPrior:
        """The VAE has no dropout or batch norm; kept for ``nn.Module`` compatibility."""
        return super().train(mode)

    @property
    def kernel_size(self) -> int:
        return self.card.arch.kernel_size

    @property
    def z_dim(self) -> int:
        return self.card.arch.z_dim

    @property
    def event_shape(self) -> torch.Size:
        """One kernel, ``(1, k, k)``: what :meth:`sample` returns per draw."""
        return torch.Size((1, self.kernel_size, self.kernel_size))

    @property
    def batch_shape(self) -> torch.Size:
        """Empty: one prior over one kernel (:meth:`expand` adds a batch shape)."""
        return torch.Size()

    #: Kernels are real-valued; ``(1, k, k)`` is one event.
    support = constraints.independent(constraints.real, 3)
    #: :meth:`rsample` is reparameterised (differentiable in the VAE's parameters).
    has_rsample = True

    @property
    def _param(self) -> Tensor:
        return next(self.parameters())

    @property
    def device(self) -> torch.device:
        return self._param.device

    @property
    def dtype(self) -> torch.dtype:
        return self._param.dtype

    @property
    def source_in_channels(self) -> int | None:
        """Input channels of the source layer when it is a source net's input layer (1 for the first
        conv of an MNIST/notMNIST fconv net), else ``None`` (an inner layer: any input width fits)."""
        src = self.card.source
        if src.layer in ("0.weight", "0.*") and src.network.startswith("fconv") and src.domain in ("mnist", "notmnist"):
            return 1
        return None

    def mismatch(self, conv: nn.Module) -> str | None:
        """Why this prior's kernels do not suit ``conv`` (``None`` when they do): a kernel-size
        mismatch, or kernels learned on grayscale input layers offered to a layer with several input
        channels (e.g. an RGB stem)."""
        ks = tuple(getattr(conv, "kernel_size", ()))
        k = self.kernel_size
        if ks != (k, k):
            return f"{self.card.spec} is a {k}x{k} prior; the layer has {'x'.join(map(str, ks))} kernels"
        want = self.source_in_channels
        have = getattr(conv, "in_channels", None)
        if want is not None and have is not None and have != want:
            return (f"{self.card.spec} was learned on the {want}-channel input layers of {self.card.source.domain} "
                    f"nets; this layer takes {have} input channels")
        return None

    def __repr__(self) -> str:
        return (f"DeepWeightPrior({self.card.spec}, kernel {self.kernel_size}x{self.kernel_size}, "
                f"z_dim {self.z_dim}, source={self.card.source.domain!r})")

    # -- sampling ------------------------------------------------------------------------
    def _n(self, sample_shape: _Shape) -> tuple[int, tuple[int, ...]]:
        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        n = 1
        for s in shape:
            n *= int(s)
        return n, shape

    def _draw(self, sample_shape: _Shape, generator: torch.Generator | None, noise: bool) -> Tensor:
        n, shape = self._n(sample_shape)
        if not noise and not torch.is_grad_enabled():  # fused decoder means, no variance head
            out = torch.empty((n, self.kernel_size**2), device=self.device, dtype=self.dtype)
            return self._fill_means(out, generator).reshape(*shape, *self.event_shape)
        z = torch.randn((n, self.z_dim), generator=generator, device=self.device, dtype=self.dtype)
        if torch.is_grad_enabled():
            if not noise:
                return self.vae.decoder.mean(z).reshape(*shape, *self.event_shape)
            mean, var = self.vae.decoder(z)
            eps = torch.randn(mean.shape, generator=generator, device=self.device, dtype=self.dtype)
            return (mean + var.sqrt() * eps).reshape(*shape, *self.event_shape)
        k = self.kernel_size
        # No-grad draws with noise: decode in cache-sized chunks into preallocated outputs and add
        # the noise in place. Same random stream (all z, then all eps) as the autograd path.
        mean = torch.empty((n, 1, k, k), device=self.device, dtype=self.dtype)
        std = torch.empty_like(mean)
        for i in range(0, n, _CHUNK):
            m, v = self.vae.decoder(z[i : i + _CHUNK])
            mean[i : i + _CHUNK] = m
            torch.sqrt(v, out=std[i : i + _CHUNK])
        eps = torch.randn(mean.shape, generator=generator, device=self.device, dtype=self.dtype)
        mean.addcmul_(std, eps)
        return mean.reshape(*shape, *self.event_shape)

    def _check_weight(self, weight: Tensor) -> None:
        if weight.ndim != 4 or tuple(weight.shape[-2:]) != (self.kernel_size, self.kernel_size):
            raise UnsupportedLayerError(
                f"sample_like needs a conv weight [out, in, {self.kernel_size}, {self.kernel_size}], "
                f"got {tuple(weight.shape)}. Use a prior whose kernel size matches."
            )

    def _means_into(self, weight: Tensor, generator: torch.Generator | None) -> bool:
        """Write decoder means straight into a contiguous conv ``weight`` of the prior's device
        and dtype (no intermediate copy); same random stream as :meth:`sample_like`. Returns
        False (nothing written) when the weight cannot be written in place."""
        self._check_weight(weight)
        if weight.device != self.device or weight.dtype != self.dtype or not weight.is_contiguous():
            return False
        with torch.no_grad():
            self._fill_means(weight.view(weight.shape[0] * weight.shape[1], -1), generator)
        return True

    def _fill_means(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        """Decoder means of ``len(out)`` draws z ~ N(0, I) written into ``out`` ``[n, k²]`` (no grad)."""
        z = torch.randn((out.shape[0], self.z_dim), generator=generator, device=self.device, dtype=self.dtype)
        return self.vae.decoder.mean_into(z, out)

    def sample(self, sample_shape: _Shape = (), generator: torch.Generator | None = None,
               noise: bool = True) -> Tensor:
        """Draw kernels ``[*sample_shape, 1, k, k]`` without gradients.

        Args:
            sample_shape: an int ``n`` or a shape.
            generator: source of randomness; the same seed gives the same kernels.
            noise: add the decoder's Gaussian noise (a true sample of p(w)); ``False`` returns
                decoder means of z ~ N(0, I), the paper's choice for initialisation.
        """
        with torch.no_grad():
            return self._draw(sample_shape, generator, noise)

    def rsample(self, sample_shape: _Shape = (), generator: torch.Generator | None = None,
                noise: bool = True) -> Tensor:
        """Like :meth:`sample` but differentiable with respect to the VAE parameters."""
        return self._draw(sample_shape, generator, noise)

    def sample_like(self, weight: Tensor, generator: torch.Generator | None = None,
                    noise: bool = False) -> Tensor:
        """Kernels shaped like a conv weight ``[out, in, k, k]``, each slice drawn independently,
        on ``weight``'s device and dtype. Decoder means by default (``noise=False``)."""
        self._check_weight(weight)
        out = self.sample(tuple(weight.shape[:2]), generator=generator, noise=noise)
        return out.reshape(weight.shape).to(device=weight.device, dtype=weight.dtype)

    def expand(self, batch_shape: _Shape) -> DeepWeightPriorDistribution:
        """This prior as a ``torch.distributions.Distribution`` with ``batch_shape`` independent kernels
        (e.g. a conv weight's ``(out, in)``): ``sample(sample_shape)`` returns
        ``sample_shape + batch_shape + (1, k, k)``, ``log_prob`` the matching ``sample_shape + batch_shape``."""
        return DeepWeightPriorDistribution(self, self._n(batch_shape)[1])

    def as_distribution(self, *, k: int = 1000, noise: bool = True,
                        generator: torch.Generator | None = None) -> DeepWeightPriorDistribution:
        """This prior as a ``torch.distributions.Distribution`` (empty batch shape; see
        :class:`~dwp_hub.model.distribution.DeepWeightPriorDistribution`)."""
        return DeepWeightPriorDistribution(self, torch.Size(), k=k, noise=noise, generator=generator)

    # -- densities -----------------------------------------------------------------------
    def _check(self, kernels: Tensor) -> Tensor:
        k = self.kernel_size
        if kernels.shape[-2:] != (k, k):
            raise UnsupportedLayerError(
                f"This prior is over {k}x{k} kernels; got trailing shape {tuple(kernels.shape[-2:])}."
            )
        return kernels.reshape(-1, 1, k, k).to(device=self.device, dtype=self.dtype)

    def _batch(self, kernels: Tensor) -> torch.Size:
        """``kernels.shape`` without the event shape ``(1, k, k)``; anything else is an error."""
        k = self.kernel_size
        if kernels.ndim < 3 or tuple(kernels.shape[-3:]) != (1, k, k):
            hint = (" For a conv weight [out, in, k, k] use weight.unsqueeze(-3)."
                    if kernels.ndim >= 2 and tuple(kernels.shape[-2:]) == (k, k) else "")
            raise UnsupportedLayerError(
                f"This prior is over {k}x{k} kernels: expected a tensor [..., 1, {k}, {k}] (sample_shape + batch_shape + event_shape "
                f"(1, {k}, {k})), got {tuple(kernels.shape)}.{hint}"
            )
        return kernels.shape[:-3]

    def elbo(self, kernels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-kernel ELBO (nats), one z sample: a stochastic lower bound of log p(w).

        Args:
            kernels: ``[..., 1, k, k]``; the result has shape ``[...]``.
            generator: makes the estimate reproducible.
        """
        batch = self._batch(kernels)
        return self.vae.elbo(self._check(kernels), generator=generator).reshape(batch)

    def log_prob(self, kernels: Tensor, k: int = 1000, generator: torch.Generator | None = None) -> Tensor:
        """A **stochastic** importance-weighted estimate of log p(w) with ``k`` samples of r(z|w)
        (nats per kernel; a lower bound in expectation that tightens as ``k`` grows).

        Args:
            kernels: ``[..., 1, k, k]`` (``sample_shape + batch_shape + event_shape``); the result
                has shape ``[...]``.
            k: importance samples per kernel.
            generator: makes the estimate reproducible (same generator state, same value).
        """
        batch = self._batch(kernels)
        return self.vae.iw_log_prob(self._check(kernels), k=k, generator=generator).reshape(batch)

    #: The explicit name of :meth:`log_prob`: it is an importance-weighted estimate, not exact.
    iw_log_prob = log_prob

    def encode(self, kernels: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of r(z|w), each ``[N, z_dim]``."""
        return self.vae.encoder(self._check(kernels))

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and variance of p(w|z), each ``[N, 1, k, k]``."""
        return self.vae.decoder(z.to(device=self.device, dtype=self.dtype))

    def extra_repr(self) -> str:
        return self.card.spec

    def state_summary(self) -> dict[str, Any]:
        """Card fields a user most often wants, as a flat dict."""
        c = self.card
        return {
            "name": c.name, "version": c.version, "kernel_size": c.arch.kernel_size, "z_dim": c.arch.z_dim,
            "source": c.source.domain, "heldout_elbo": c.metrics.heldout_elbo,
            "heldout_iw_log_likelihood": c.metrics.heldout_iw_log_likelihood,
        }
