"""The kernel VAE: encoder r(z|w) and decoder p(w|z), both diagonal Gaussians.

Variances are ``softplus`` of a linear output, with no clamp and no floor (the paper's recipe).
Architectures (paper Table 1, ELU everywhere; ``ArchConfig.activation`` may swap it for ReLU):

* ``conv7`` (7x7, z 2, hidden 32): encoder Conv(1→h,3) → Conv(h→2h,3) → Conv(2h→2h,3) → two 1x1
  heads; decoder ConvT(z→2h,3) → ConvT(2h→2h,3) → ConvT(2h→h,3) → two 1x1 heads.
  56,004 / 56,674 parameters.
* ``conv5`` (5x5, z 4, hidden 64): encoder Conv(1→h,3,p1) → Conv(h→h,3,p1) → Conv(h→2h,3) →
  Conv(2h→2h,3) → heads; decoder Conv1x1(z→2h) → ConvT(2h→2h,3) → ConvT(2h→2h,3) →
  Conv1x1(2h→h) → heads. 260,040 / 304,194 parameters.
* ``mlp`` (dwp-hub's design for 3x3, any k): encoder Linear(k²→h) → Linear(h→h) → heads;
  decoder Linear(z→h) → Linear(h→h) → heads (Linear(h→k²) for mean and variance).
  Why an MLP: a 3x3 kernel is 9 numbers; a 3x3 convolution over a 3x3 grid shares almost no
  weights, so spatial convolutions buy nothing over dense layers, while dense layers are several
  times cheaper per kernel; that matters because modern nets hold millions of 3x3 kernels and the
  VI bound runs the VAE on every one. Width and activation: ``cifar10-3x3@1.1.0`` uses hidden 32
  (held-out ELBO 14.34 against 14.54 nats for hidden 64 in 1.0.0, same kernels), about 3x fewer
  FLOPs per kernel; ``cifar10-3x3@1.2.0`` swaps ELU for ReLU (held-out ELBO 14.67: no loss), which
  removes the ``exp`` per hidden unit: the two ELUs were about half of the fused decoder's time
  on a ResNet-18's 1.2M kernels after the width cut.
"""

from __future__ import annotations

import contextvars
import math

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.card import ArchConfig

_LOG_2PI = math.log(2 * math.pi)
#: False while a VAE is built only to receive stored weights (see ``KernelVAE(init=False)``).
_RANDOM_INIT: contextvars.ContextVar[bool] = contextvars.ContextVar("dwp_hub_vae_random_init", default=True)


class _SkippableInit:
    """Mixin: ``reset_parameters`` is a no-op while ``_RANDOM_INIT`` is False (thread- and
    task-safe), so loading a prior does not pay for a random initialisation it overwrites."""

    def reset_parameters(self) -> None:
        if _RANDOM_INIT.get():
            super().reset_parameters()  # type: ignore[misc]


class _Conv2d(_SkippableInit, nn.Conv2d):
    pass


class _ConvTranspose2d(_SkippableInit, nn.ConvTranspose2d):
    pass


class _Linear(_SkippableInit, nn.Linear):
    pass


class _Heads(nn.Module):
    """Two parallel output layers: mean and softplus-variance."""

    def __init__(self, mean: nn.Module, var: nn.Module) -> None:
        super().__init__()
        self.mean = mean
        self.var = var

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(h), F.softplus(self.var(h))


class _EluFunction(torch.autograd.Function):
    """ELU through ``exp`` rather than ``expm1``: torch's CPU ELU kernel computes ``expm1`` element
    by element (about 15x slower than its vectorised ``exp`` here), and the kernel VAEs' ELUs were
    the largest single cost of a fast-bound VI step. ``exp(x) − 1`` differs from ``expm1(x)`` by at
    most a few float32 ulps of 1 (absolute error below 1e-7), far under any weight's scale."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # noqa: D102
        y = elu_fast_(x.clone())
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        (y,) = ctx.saved_tensors
        return grad * y.clamp(max=0.0).add_(1.0)  # 1 where x > 0, exp(x) = y + 1 elsewhere


def elu_fast_(x: Tensor) -> Tensor:
    """In-place ELU (alpha 1): ``max(x, 0) + exp(min(x, 0)) − 1``."""
    neg = x.clamp(max=0.0).exp_().sub_(1.0)
    return x.clamp_(min=0.0).add_(neg)


class ELU(nn.ELU):
    """``nn.ELU()`` (alpha 1), computed by :class:`_EluFunction`; no parameters (same state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _EluFunction.apply(x)
        return elu_fast_(x.clone())


_ACTIVATIONS: dict[str, type[nn.Module]] = {"elu": ELU, "relu": nn.ReLU}
_ACTIVATIONS_INPLACE = {"elu": elu_fast_, "relu": F.relu_}


def _encoder(cfg: ArchConfig) -> tuple[nn.Module, _Heads]:
    h, z, act = cfg.hidden, cfg.z_dim, _ACTIVATIONS[cfg.activation]
    if cfg.kind == "conv7":
        body = nn.Sequential(_Conv2d(1, h, 3), act(), _Conv2d(h, 2 * h, 3), act(),
                             _Conv2d(2 * h, 2 * h, 3), act())
        return body, _Heads(_Conv2d(2 * h, z, 1), _Conv2d(2 * h, z, 1))
    if cfg.kind == "conv5":
        body = nn.Sequential(_Conv2d(1, h, 3, padding=1), act(), _Conv2d(h, h, 3, padding=1), act(),
                             _Conv2d(h, 2 * h, 3), act(), _Conv2d(2 * h, 2 * h, 3), act())
        return body, _Heads(_Conv2d(2 * h, z, 1), _Conv2d(2 * h, z, 1))
    k2 = cfg.kernel_size**2
    body = nn.Sequential(nn.Flatten(), _Linear(k2, h), act(), _Linear(h, h), act())
    return body, _Heads(_Linear(h, z), _Linear(h, z))


def _decoder(cfg: ArchConfig) -> tuple[nn.Module, _Heads]:
    h, z, act = cfg.hidden, cfg.z_dim, _ACTIVATIONS[cfg.activation]
    if cfg.kind == "conv7":
        body = nn.Sequential(_ConvTranspose2d(z, 2 * h, 3), act(), _ConvTranspose2d(2 * h, 2 * h, 3), act(),
                             _ConvTranspose2d(2 * h, h, 3), act())
        return body, _Heads(_ConvTranspose2d(h, 1, 1), _ConvTranspose2d(h, 1, 1))
    if cfg.kind == "conv5":
        body = nn.Sequential(_Conv2d(z, 2 * h, 1), act(), _ConvTranspose2d(2 * h, 2 * h, 3), act(),
                             _ConvTranspose2d(2 * h, 2 * h, 3), act(), _Conv2d(2 * h, h, 1), act())
        return body, _Heads(_Conv2d(h, 1, 1), _Conv2d(h, 1, 1))
    k2 = cfg.kernel_size**2
    body = nn.Sequential(_Linear(z, h), act(), _Linear(h, h), act())
    return body, _Heads(_Linear(h, k2), _Linear(h, k2))


def gaussian_log_prob(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """Elementwise log N(x | mean, var)."""
    return -0.5 * (_LOG_2PI + var.log() + (x - mean) ** 2 / var)


def kl_to_standard_normal(mean: Tensor, var: Tensor) -> Tensor:
    """Elementwise KL(N(mean, var) || N(0, 1))."""
    return 0.5 * (var + mean**2 - 1.0 - var.log())


class KernelEncoder(nn.Module):
    """r(z | w): kernels ``[N, 1, k, k]`` → mean and variance ``[N, z]``."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.body, self.heads = _encoder(cfg)

    def forward(self, w: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self.heads(self.body(w))
        return mean.flatten(1), var.flatten(1)


class KernelDecoder(nn.Module):
    """p(w | z): latents ``[N, z]`` → mean and variance ``[N, 1, k, k]``."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.body, self.heads = _decoder(cfg)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        k = self.cfg.kernel_size
        if self.cfg.kind == "mlp":
            mean, var = self.heads(self.body(z))
        else:
            mean, var = self.heads(self.body(z[:, :, None, None]))
        return mean.reshape(-1, 1, k, k), var.reshape(-1, 1, k, k)

    def mean(self, z: Tensor) -> Tensor:
        """Decoder mean only ``[N, 1, k, k]`` (the variance head is not evaluated)."""
        k = self.cfg.kernel_size
        h = self.body(z if self.cfg.kind == "mlp" else z[:, :, None, None])
        return self.heads.mean(h).reshape(-1, 1, k, k)

    @torch.no_grad()
    def mean_into(self, z: Tensor, out: Tensor, chunk: int = 16_384) -> Tensor:
        """Decoder means of ``z`` ``[N, z_dim]`` written into ``out`` ``[N, k²]`` (no autograd).

        Equal to :meth:`mean` up to float rounding (the GEMMs are blocked differently), and
        deterministic: the same ``z`` always gives the same bits.

        The MLP decoder runs fused (``addmm`` into reused cache-sized buffers, activation in place): no
        per-chunk allocation, no variance head. Other kinds decode chunk by chunk with :meth:`mean`.
        """
        n = z.shape[0]
        if self.cfg.kind != "mlp":
            for i in range(0, n, chunk):
                out[i : i + chunk] = self.mean(z[i : i + chunk]).flatten(1)
            return out
        lin1, lin2, head = self.body[0], self.body[2], self.heads.mean
        h, kk = self.cfg.hidden, self.cfg.kernel_size**2
        b1 = z.new_empty((min(chunk, n), h))
        b2 = torch.empty_like(b1)
        w1, w2, wm, bm = lin1.weight.t(), lin2.weight.t(), head.weight.t(), head.bias
        act_ = _ACTIVATIONS_INPLACE[self.cfg.activation]
        pad = -kk % 16  # a narrow odd output width (9 for 3x3) makes the GEMM much slower than a padded one
        if pad:
            wm = torch.cat([wm, wm.new_zeros((h, pad))], dim=1)
            bm = torch.cat([bm, bm.new_zeros(pad)])
            b3 = z.new_empty((min(chunk, n), kk + pad))
        for i in range(0, n, chunk):
            j = min(i + chunk, n)
            t1, t2 = b1[: j - i], b2[: j - i]
            act_(torch.addmm(lin1.bias, z[i:j], w1, out=t1))
            act_(torch.addmm(lin2.bias, t1, w2, out=t2))
            if pad:
                out[i:j] = torch.addmm(bm, t2, wm, out=b3[: j - i])[:, :kk]
            else:
                torch.addmm(bm, t2, wm, out=out[i:j])
        return out


class KernelVAE(nn.Module):
    """A VAE over square kernels, built from an :class:`~dwp_hub.card.ArchConfig`."""

    def __init__(self, cfg: ArchConfig, init: bool = True) -> None:
        """Args:
            cfg: the architecture.
            init: draw PyTorch's default random initialisation; ``False`` leaves the parameters
                uninitialised (``torch.empty``) for a caller that loads stored weights next.
        """
        super().__init__()
        self.cfg = cfg
        token = _RANDOM_INIT.set(init)
        try:
            self.encoder = KernelEncoder(cfg)
            self.decoder = KernelDecoder(cfg)
        finally:
            _RANDOM_INIT.reset(token)

    def elbo(self, w: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-kernel ELBO ``E_r log p(w|z) − KL(r(z|w) ‖ N(0, I))`` with one z sample, ``[N]``."""
        mu, var = self.encoder(w)
        eps = _noise(mu.shape, generator, mu)
        z = mu + var.sqrt() * eps
        w_mu, w_var = self.decoder(z)
        rec = gaussian_log_prob(w, w_mu, w_var).flatten(1).sum(1)
        return rec - kl_to_standard_normal(mu, var).sum(1)

    def iw_log_prob(self, w: Tensor, k: int = 1000, generator: torch.Generator | None = None,
                    chunk: int = 20_000) -> Tensor:
        """Importance-weighted estimate of log p(w) with ``k`` samples from r(z|w), ``[N]``.

        Work is split so that at most ``chunk`` decoder evaluations run at once.
        """
        mu, var = self.encoder(w)
        std = var.sqrt()
        out = []
        per = max(1, chunk // max(1, k))
        for i in range(0, len(w), per):
            m, s, x = mu[i : i + per], std[i : i + per], w[i : i + per]
            n, d = m.shape
            eps = _noise((k, n, d), generator, m)
            z = m + s * eps
            w_mu, w_var = self.decoder(z.reshape(k * n, d))
            log_pw = gaussian_log_prob(x.repeat(k, 1, 1, 1), w_mu, w_var).flatten(1).sum(1).view(k, n)
            log_pz = (-0.5 * (_LOG_2PI + z**2)).sum(-1)
            log_rz = (-0.5 * (_LOG_2PI + eps**2) - s.log()).sum(-1)
            out.append(torch.logsumexp(log_pw + log_pz - log_rz, 0) - math.log(k))
        return torch.cat(out)


def _noise(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise on ``like``'s device and dtype, drawn from ``generator`` on the generator's own device:
    a CPU generator gives the same noise whatever device the kernels are on (training on a GPU then differs from
    the CPU only by float rounding)."""
    if generator is None or generator.device == like.device:
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
