"""Priors over conv weights and their KL terms for variational inference.

Convention (the same everywhere in :mod:`dwp_hub.inference`): a prior's :meth:`PriorKL.kl` returns
the KL divergence KL(q(W) ‖ p(W)) of one layer **summed over all its weights** (nats), and the
negative ELBO is ``N · mean cross-entropy + Σ_layers KL`` (see :func:`~dwp_hub.inference.objective.neg_elbo`).

Each prior declares the variational families it is defined on (``families``; the first is what
:func:`~dwp_hub.inference.to_bayesian` picks with ``family="auto"``).

* :class:`StandardNormalKL`: p(w) = N(0, 1) per weight; closed form (both families).
* :class:`LogUniformKL` (``"log-uniform"``, the paper's arm): the improper log-uniform prior on the
  variational-dropout family q(w) = N(θ, α·θ²), α = sigmoid(a) ∈ (0, 1), with the approximation of
  Kingma et al. (2015), up to a constant: KL ≈ −0.5·log α − c1·α − c2·α² − c3·α³.
* :class:`SparseLogUniformKL` (``"sparse-log-uniform"``): the same prior on the additive Gaussian
  family (sparse variational dropout), with the approximation of Molchanov et al. (2017): with
  log α = log σ² − log θ², −KL ≈ k1·sigmoid(k2 + k3·log α) − 0.5·log1p(exp(−log α)) − k1. Not the
  paper's Fig. 2a arm: from log σ² = −10 it pulls every mean to 0 long before the variances grow.
* :class:`DeepWeightPriorKL`: a hub prior p(w) = ∫ p(w|z) N(z|0, I) dz over k x k kernels, through
  the paper's auxiliary bound (Eq. 7-8, Algorithm 1), per kernel w of the layer:

      KL(q(w) ‖ p(w)) ≤ −H(q(w)) + E_q(w)[ KL(r(z|w) ‖ N(0, I)) − E_r(z|w) log p(w|z) ].

  The entropy is closed form over all weights. The reverse model r(z|w) is a trainable copy of the
  prior's encoder (one per layer, trained with the variational parameters); the decoder p(w|z) is
  the hub prior's, frozen and shared. The expectation uses ``mc_samples`` reparameterised (w, z)
  pairs per kernel.

  **Fast bound** (``bound="fast"``, the default): the second term is a sum over the layer's
  n kernels; each step evaluates it on m = ``kernels_per_step`` kernels drawn without replacement
  and multiplies by n/m, an unbiased estimate of the sum (every kernel is included with
  probability m/n). Kernels are visited in reshuffled cycles (``sampler="cycle"``: consecutive
  blocks of a random permutation, every kernel once per ⌈n/m⌉ steps like data epochs; a cycle's
  last block holds the n mod m left over and is scaled by n/its size) or drawn independently each
  step (``sampler="uniform"``).
  Layers sharing a decoder are evaluated in one decoder call (:mod:`dwp_hub.inference.fast`).
  With m ≥ n (or ``bound="full"``) the sum is exact (the paper's estimator).
  A per-kernel control variate (``control_variate=True``, the default) keeps the gradient
  unbiased while making it dense: every kernel receives a running average of its own past
  gradients each step, and the sampled kernels a correction scaled by n/m (see
  :func:`dwp_hub.inference.fast._with_control_variate`).
  Unbiased gradients do not give the exact bound's optimiser path: under Adam the fast bound lowers the
  kernel term far more slowly (docs/results/vi-long-diagnosis, session 12), so long runs that must
  follow the paper's dynamics use ``bound="full"``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.errors import ConfigError, PriorNotFoundError, UnsupportedLayerError
from dwp_hub.inference._protocols import Bound, Family, Sampler, VariationalLayer
from dwp_hub.inference.fast import dwp_vae_terms
from dwp_hub.model.prior import DeepWeightPrior
from dwp_hub.model.vae import KernelVAE, kl_to_standard_normal

#: Molchanov et al. (2017) constants of the sparse-variational-dropout KL approximation.
K1, K2, K3 = 0.63576, 1.87320, 1.48695
#: Kingma et al. (2015) constants of the variational-dropout KL approximation.
C1, C2, C3 = 1.16145124, -1.50204118, 0.58629921
#: Kernels per layer and step of the fast deep-weight-prior bound (see tools/bench_vi.py): 32 keeps the
#: fast step of the paper's 32/128 net within 1.3x the standard-normal step (64 was the default of
#: dwp-hub 0.2.0: 1.38x; both are unbiased, the control variate keeps the variance down).
DEFAULT_KERNELS_PER_STEP = 32
_LOG_2PI_E = math.log(2 * math.pi) + 1.0
_LOG_2PI = math.log(2 * math.pi)


#: Prior classes by ``kind`` (and by each alias); filled as classes are defined (see :meth:`PriorKL.__init_subclass__`).
PRIOR_CLASSES: dict[str, type[PriorKL]] = {}


class PriorKL(nn.Module):
    """A prior over one Bayesian layer's weights, with a (possibly stochastic) KL estimator.

    A subclass declares ``kind`` (its name, the key of :data:`PRIOR_CLASSES`), ``aliases`` (other
    names users may type) and ``families`` (the variational families its KL is defined on; the first
    is what ``to_bayesian(family="auto")`` picks); defining the class registers it.
    """

    #: Short name used in reports and checkpoints, and the registry key.
    kind: ClassVar[str] = "prior"
    #: Other names that select this class.
    aliases: ClassVar[tuple[str, ...]] = ()
    #: Variational families this prior's KL is defined on; the first is the default.
    families: ClassVar[tuple[Family, ...]] = (Family.GAUSSIAN, Family.VARIATIONAL_DROPOUT)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for key in (cls.kind, *cls.aliases):
            PRIOR_CLASSES[key] = cls

    def check(self, layer: VariationalLayer) -> None:
        """Raise :class:`UnsupportedLayerError` if this prior cannot serve ``layer``."""
        self.check_family(layer.family)

    def check_family(self, family: Family | str) -> None:
        """Raise :class:`UnsupportedLayerError`, listing the valid combinations, if this prior is not
        defined on ``family``."""
        if Family.parse(family) not in self.families:
            raise UnsupportedLayerError(
                f"the {self.kind} prior is not defined on the {Family.parse(family).value} family. Valid combinations: "
                + "; ".join(f"{kind}: {', '.join(fams)}" for kind, fams in prior_families().items()) + "."
            )

    def prepare(self, layer: VariationalLayer) -> None:
        """Register the per-layer state this prior's estimator keeps (buffers of ``layer``); called
        when the prior is attached. Default: none."""

    def kl(self, layer: VariationalLayer) -> Tensor:
        """KL(q ‖ p) of ``layer``'s weights, summed over weights (nats)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line description for reports."""
        return self.kind


class StandardNormalKL(PriorKL):
    """p(w) = N(0, std²) per weight; KL in closed form."""

    kind = "standard-normal"
    aliases = ("standard_normal", "normal", "sn", "gaussian", "n(0,1)")

    def __init__(self, std: float = 1.0) -> None:
        super().__init__()
        if not std > 0:
            raise ConfigError(f"std must be positive, got {std}.")
        self.std = float(std)

    def kl(self, layer: VariationalLayer) -> Tensor:
        log_s2 = 2 * math.log(self.std)
        s2 = self.std**2
        ls2 = layer.log_variance()
        return 0.5 * ((ls2.exp() + layer.weight**2) / s2 - 1.0 - ls2 + log_s2).sum()

    def describe(self) -> str:
        return "standard-normal" if self.std == 1.0 else f"normal(0, {self.std:g}^2)"


class LogUniformKL(PriorKL):
    """The log-uniform prior p(|w|) ∝ 1/|w| on the variational-dropout family (the paper's arm).

    q(w) = N(θ, α·θ²) with α = sigmoid(a); per weight, up to an additive constant (the prior is
    improper), the KL approximation of Kingma et al. (2015, Eq. 15 and its appendix)
    KL ≈ −0.5·log α − c1·α − c2·α² − c3·α³, with c1, c2, c3 = :data:`C1`, :data:`C2`, :data:`C3`.
    It does not depend on θ: the prior is scale invariant.
    """

    kind = "log-uniform"
    aliases = ("log_uniform", "loguniform", "lu", "variational-dropout", "vd")
    families = (Family.VARIATIONAL_DROPOUT,)

    def kl(self, layer: VariationalLayer) -> Tensor:
        a = layer.logit_alpha  # type: ignore[attr-defined]  (the variational-dropout family's parameter)
        alpha = torch.sigmoid(a)
        return -(0.5 * F.logsigmoid(a) + alpha * (C1 + alpha * (C2 + alpha * C3))).sum()


class SparseLogUniformKL(PriorKL):
    """The log-uniform prior on the additive Gaussian family, with the Molchanov et al. (2017)
    approximation (sparse variational dropout).

    ``log α = log σ² − log(θ² + eps)``; the KL is up to an additive constant (the prior is
    improper), chosen so that it tends to 0 as α → ∞.
    """

    kind = "sparse-log-uniform"
    aliases = ("sparse_log_uniform", "sparse-vd", "svd")
    families = (Family.GAUSSIAN,)

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = float(eps)

    def kl(self, layer: VariationalLayer) -> Tensor:
        log_alpha = layer.log_variance() - torch.log(layer.weight**2 + self.eps)
        neg_kl = K1 * torch.sigmoid(K2 + K3 * log_alpha) - 0.5 * F.softplus(-log_alpha) - K1
        return -neg_kl.sum()


@dataclass(frozen=True)
class GapEstimate:
    """Appendix F diagnostic for one layer: how loose the auxiliary bound is.

    Attributes:
        kernels: kernels in the layer; ``kernels_used``: how many were evaluated (totals are scaled).
        k: importance samples per kernel.
        kl_bound: the auxiliary KL bound (what training minimises), nats.
        kl_iw: the importance-weighted (tighter) estimate of the KL, nats.
        gap: ``kl_bound − kl_iw`` (≈ the gap G of Eq. 16, ≥ 0 up to noise), nats.
        gap_per_kernel: ``gap / kernels``.
    """

    kernels: int
    kernels_used: int
    k: int
    kl_bound: float
    kl_iw: float
    gap: float
    gap_per_kernel: float


class DeepWeightPriorKL(PriorKL):
    """A deep weight prior through the paper's auxiliary bound (see the module docstring).

    Args:
        prior: a loaded :class:`~dwp_hub.model.prior.DeepWeightPrior` (or a bare
            :class:`~dwp_hub.model.vae.KernelVAE`, e.g. for benchmarks).
        mc_samples: (w, z) samples per kernel and step.
        bound: ``"fast"`` (subsample kernels) or ``"full"`` (every kernel every step).
        kernels_per_step: m of the fast bound (default :data:`DEFAULT_KERNELS_PER_STEP`).
        sampler: ``"cycle"`` (reshuffled cycles over the kernels) or ``"uniform"`` (fresh subset
            each step).
        control_variate: add the per-kernel gradient control variate to the fast bound.
        cv_decay: weight of the newest gradient in each kernel's running average (1: SAGA, the
            last gradient only).
        label: name used in reports (default: the prior's ``name@version``).

    Attributes:
        encoder: the reverse model r(z|w), trainable, initialised from the prior's encoder.
        decoder: the prior's decoder p(w|z), frozen (shared with the prior).
    """

    kind = "dwp"
    families = (Family.GAUSSIAN,)
    #: Names of the layer buffers that hold this prior's per-layer estimator state.
    STATE_BUFFERS: ClassVar[tuple[str, ...]] = ("dwp_perm", "dwp_cursor", "dwp_cv_theta", "dwp_cv_log_sigma2",
                                               "dwp_cv_seen")

    def __init__(self, prior: DeepWeightPrior | KernelVAE, *, mc_samples: int = 1, bound: Bound | str = Bound.FAST,
                 kernels_per_step: int | None = None, sampler: Sampler | str = Sampler.CYCLE,
                 control_variate: bool = True, cv_decay: float = 0.5, label: str | None = None) -> None:
        super().__init__()
        vae = prior if isinstance(prior, KernelVAE) else prior.vae
        if label is None:
            label = f"{vae.cfg.kind}-vae" if isinstance(prior, KernelVAE) else prior.card.spec
        if mc_samples < 1:
            raise ConfigError(f"mc_samples must be >= 1, got {mc_samples}.")
        m = DEFAULT_KERNELS_PER_STEP if kernels_per_step is None else int(kernels_per_step)
        if m < 1:
            raise ConfigError(f"kernels_per_step must be >= 1, got {m}.")
        if not 0.0 < cv_decay <= 1.0:
            raise ConfigError(f"cv_decay must be in (0, 1], got {cv_decay}.")
        self.label = label
        self.cfg = vae.cfg
        self.mc_samples = int(mc_samples)
        self.bound = Bound.parse(bound)
        self.kernels_per_step = m
        self.sampler = Sampler.parse(sampler)
        self.control_variate = bool(control_variate)
        self.cv_decay = float(cv_decay)
        self.encoder = copy.deepcopy(vae.encoder)
        for p in self.encoder.parameters():
            p.requires_grad_(True)
        self.decoder = vae.decoder
        for p in self.decoder.parameters():
            p.requires_grad_(False)

    @property
    def kernel_size(self) -> int:
        return self.cfg.kernel_size

    @property
    def z_dim(self) -> int:
        return self.cfg.z_dim

    def describe(self) -> str:
        how = "full bound" if self.bound is Bound.FULL else f"fast bound, {self.kernels_per_step} kernels/step"
        if self.bound is Bound.FAST and self.control_variate:
            how += ", control variate"
        return f"dwp {self.label} ({how}, {self.mc_samples} MC)"

    def train(self, mode: bool = True) -> DeepWeightPriorKL:
        super().train(mode)
        self.decoder.eval()
        return self

    def check_kernel_size(self, ks: tuple[int, ...]) -> None:
        """Raise :class:`UnsupportedLayerError` unless ``ks`` is this prior's k x k."""
        k = self.kernel_size
        ks = tuple(ks)
        if len(ks) != 2:
            raise UnsupportedLayerError(f"the layer has no 2-D kernels (a linear layer?); {self.label} is a prior over "
                                        f"{k}x{k} conv kernels. Give it a Gaussian-family prior.")
        if ks[0] != ks[1]:
            raise UnsupportedLayerError(f"the layer has non-square kernels {ks}; "
                                        f"the deep weight prior {self.label} covers {k}x{k} kernels.")
        if ks != (k, k):
            raise UnsupportedLayerError(
                f"the layer has {ks[0]}x{ks[1]} kernels but {self.label} is a {k}x{k} prior. "
                f"Assign a {ks[0]}x{ks[0]} prior to it (or 'standard-normal' / 'log-uniform')."
            )

    def check(self, layer: VariationalLayer) -> None:
        self.check_family(layer.family)
        self.check_kernel_size(tuple(layer.kernel_size))

    # -- per-layer estimator state: buffers of the layer ----------------------------------
    def prepare(self, layer: VariationalLayer) -> None:
        """Register the fast bound's state on ``layer`` (kept by ``state_dict`` and checkpoints): the
        cycle sampler's permutation and cursor, and the control variate's per-kernel gradient memory."""
        n, k = layer.n_kernels, self.kernel_size
        like = layer.weight.detach()
        if getattr(layer, "dwp_perm", None) is not None and layer.dwp_perm.numel() == n:  # type: ignore[attr-defined]
            return
        layer.register_buffer("dwp_perm", torch.arange(n, device=like.device))
        layer.register_buffer("dwp_cursor", torch.tensor(n, device=like.device))  # n: start a new cycle
        layer.register_buffer("dwp_cv_theta", like.new_zeros((n, k, k)))
        layer.register_buffer("dwp_cv_log_sigma2", like.new_zeros((n, k, k)))
        layer.register_buffer("dwp_cv_seen", torch.zeros(n, dtype=torch.bool, device=like.device))

    # -- pieces of the bound --------------------------------------------------------------
    def neg_entropy(self, layer: VariationalLayer) -> Tensor:
        """−H(q) over all the layer's weights, in closed form."""
        log_var = layer.log_variance()
        return -0.5 * (_LOG_2PI_E * log_var.numel() + log_var.sum())

    def subset_size(self, n: int) -> int:
        """How many of ``n`` kernels one step evaluates."""
        return n if self.bound is Bound.FULL else min(n, self.kernels_per_step)

    def select(self, layer: VariationalLayer, generator: torch.Generator | None = None) -> Tensor | None:
        """Indices of this step's kernels of ``layer`` (``None``: all of them)."""
        n = layer.n_kernels
        m = self.subset_size(n)
        if m >= n:
            return None
        device = layer.weight.device
        if self.sampler is Sampler.UNIFORM:
            return torch.randperm(n, generator=generator, device="cpu")[:m].to(device)
        # Consecutive blocks of a random permutation; the last block of a cycle holds the n mod m
        # left over (each block is a uniformly random subset, scaled by n / its size: unbiased).
        self.prepare(layer)
        perm, cursor = layer.dwp_perm, int(layer.dwp_cursor)  # type: ignore[attr-defined]
        if cursor >= n:
            perm.copy_(torch.randperm(n, generator=generator, device="cpu").to(perm.device))
            cursor = 0
        idx = perm[cursor : cursor + m].clone()
        layer.dwp_cursor.fill_(cursor + idx.numel())  # type: ignore[attr-defined]
        return idx.to(device)

    def cv_state(self, layer: VariationalLayer) -> dict[str, Tensor]:
        """The control variate's per-kernel gradient memory of ``layer`` (its buffers, updated in
        place): ``theta``, ``log_sigma2`` ``[n, k, k]`` and ``seen`` ``[n]`` bool."""
        self.prepare(layer)
        return {"theta": layer.dwp_cv_theta, "log_sigma2": layer.dwp_cv_log_sigma2,  # type: ignore[attr-defined]
                "seen": layer.dwp_cv_seen}  # type: ignore[attr-defined]

    def kernel_terms(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """For kernels ``w`` ``[B, 1, k, k]``: z samples ``[B, z]`` from r(z|w) and KL(r(z|w) ‖ N(0, I)) ``[B]``."""
        mu, var = self.encoder(w)
        z = mu + var.sqrt() * torch.randn_like(mu)
        return z, kl_to_standard_normal(mu, var).sum(1)

    def kl(self, layer: VariationalLayer) -> Tensor:
        return self.neg_entropy(layer) + dwp_vae_terms([(layer, self)])[0]

    # -- initialisation and diagnostics ----------------------------------------------------
    @torch.no_grad()
    def init_means_(self, layer: VariationalLayer | nn.Conv2d, generator: torch.Generator | None = None) -> None:
        """Set the layer's means (or a plain conv's weights) to decoder means of z ~ N(0, I) (the
        paper's init for dwp runs)."""
        k = self.kernel_size
        n = layer.weight.shape[0] * layer.weight.shape[1]
        z = torch.randn((n, self.z_dim), generator=generator, device="cpu")
        z = z.to(device=layer.weight.device, dtype=layer.weight.dtype)
        mean, _ = self.decoder(z)
        layer.weight.copy_(mean.reshape(layer.weight.shape[0], layer.weight.shape[1], k, k))

    @torch.no_grad()
    def gap(self, layer: VariationalLayer, k: int = 1000, max_kernels: int | None = 256,
            generator: torch.Generator | None = None, chunk: int = 100_000) -> GapEstimate:
        """Importance-weighted estimate of the bound's gap (paper Appendix F, Eq. 16-19).

        For one weight sample w ~ q per kernel, compares the IWAE estimate of log p(w) with ``k``
        samples of the (trained) reverse model against the auxiliary bound's per-kernel ELBO
        (E_r log p(w|z) estimated with the same ``k`` samples, KL(r ‖ N(0, I)) in closed form).

        Args:
            k: importance samples per kernel (the paper uses 10,000).
            max_kernels: evaluate at most this many random kernels and scale the totals (``None``: all).
            generator: randomness of the kernel subset and the samples.
            chunk: decoder evaluations per batch.
        """
        n = layer.n_kernels
        ks = self.kernel_size
        theta = layer.weight.detach().reshape(n, 1, ks, ks)
        log_s2 = layer.log_variance().detach().reshape(n, 1, ks, ks)
        if max_kernels is not None and max_kernels < n:
            idx = torch.randperm(n, generator=generator)[:max_kernels].to(theta.device)
            theta, log_s2 = theta[idx], log_s2[idx]
        used = theta.shape[0]
        noise = torch.randn(theta.shape, generator=generator).to(theta)
        w = theta + (0.5 * log_s2).exp() * noise
        mu, var = self.encoder(w)
        std = var.sqrt()
        kl_z = kl_to_standard_normal(mu, var).sum(1)
        iw, rec = [], []
        per = max(1, chunk // k)
        for i in range(0, used, per):
            m_, s_, x_ = mu[i : i + per], std[i : i + per], w[i : i + per]
            b, d = m_.shape
            eps = torch.randn((k, b, d), generator=generator).to(m_)
            z = m_ + s_ * eps
            w_mu, w_var = self.decoder(z.reshape(k * b, d))
            log_pw = (-0.5 * (_LOG_2PI + w_var.log() + (x_.repeat(k, 1, 1, 1) - w_mu) ** 2 / w_var))
            log_pw = log_pw.flatten(1).sum(1).view(k, b)
            log_pz = (-0.5 * (_LOG_2PI + z**2)).sum(-1)
            log_rz = (-0.5 * (_LOG_2PI + eps**2) - s_.log()).sum(-1)
            iw.append(torch.logsumexp(log_pw + log_pz - log_rz, 0) - math.log(k))
            rec.append(log_pw.mean(0))
        log_p_iw = torch.cat(iw)
        elbo = torch.cat(rec) - kl_z
        scale = n / used
        neg_h = float(self.neg_entropy(layer))
        kl_bound = neg_h - scale * float(elbo.sum())
        kl_iw = neg_h - scale * float(log_p_iw.sum())
        gap = kl_bound - kl_iw
        return GapEstimate(n, used, k, kl_bound, kl_iw, gap, gap / n)


# -- building priors from user entries -----------------------------------------------------
def prior_families() -> dict[str, tuple[str, ...]]:
    """Each prior kind and the variational families it is defined on."""
    kinds = {cls.kind: cls for cls in PRIOR_CLASSES.values()}
    return {kind: tuple(f.value for f in cls.families) for kind, cls in kinds.items()}


def auto_prior(kernel_size: int, cache: dict[Any, Any] | None = None) -> DeepWeightPrior | None:
    """The hub prior for ``kernel_size`` (:data:`dwp_hub.init.AUTO_PRIORS`), or ``None`` when absent."""
    from dwp_hub.init import AUTO_PRIORS  # deferred: init imports the registry (loading priors)

    spec = AUTO_PRIORS.get(kernel_size)
    if spec is None:
        return None
    try:
        return _load_cached(spec, cache)
    except PriorNotFoundError:
        return None


def _load_cached(spec: str, cache: dict[Any, Any] | None) -> DeepWeightPrior:
    from dwp_hub._api import load

    cache = {} if cache is None else cache
    key = ("spec", spec)
    if key not in cache:
        cache[key] = load(spec)
    return cache[key]


def make_prior(entry: Any, conv: nn.Module, *, cache: dict[Any, Any] | None = None, bound: Bound | str = Bound.FAST,
               kernels_per_step: int | None = None, mc_samples: int = 1) -> PriorKL:
    """A :class:`PriorKL` for one conv layer from a user entry (see :func:`~dwp_hub.inference.to_bayesian`).

    Names are looked up in :data:`PRIOR_CLASSES` by each class's ``kind`` and ``aliases``; ``"dwp"``
    is the hub prior for the layer's kernel size; any other string is a hub spec.

    Raises:
        UnsupportedLayerError: kernel-size mismatch, or ``"dwp"`` with no hub prior for the size.
        PriorNotFoundError: a hub spec that no registry holds.
        ConfigError: an entry of a type that cannot make a prior.
    """
    dwp_opts = {"bound": bound, "kernels_per_step": kernels_per_step, "mc_samples": mc_samples}
    ks = tuple(getattr(conv, "kernel_size", ()))  # () for a linear layer
    if isinstance(entry, PriorKL):
        prior: PriorKL = entry
    elif isinstance(entry, (DeepWeightPrior, KernelVAE)):
        prior = DeepWeightPriorKL(entry, **dwp_opts)
    elif isinstance(entry, str):
        key = entry.strip().lower()
        cls = PRIOR_CLASSES.get(key)
        if cls is not None and cls is not DeepWeightPriorKL:
            prior = cls()
        elif key == "dwp":
            found = auto_prior(ks[0], cache) if len(ks) == 2 and ks[0] == ks[1] else None
            if found is None:
                from dwp_hub.init import AUTO_PRIORS

                raise UnsupportedLayerError(
                    f"no deep weight prior for {ks[0]}x{ks[1]} kernels (the hub's automatic choices are "
                    f"{AUTO_PRIORS}; none is installed for this size). Pass a prior spec for it, or "
                    "'standard-normal' / 'log-uniform'."
                )
            prior = DeepWeightPriorKL(found, **dwp_opts)
        else:
            prior = DeepWeightPriorKL(_load_cached(entry.strip(), cache), **dwp_opts)
    else:
        raise ConfigError(f"Cannot build a prior from {type(entry).__name__}; use a name "
                          f"({', '.join(sorted({c.kind for c in PRIOR_CLASSES.values()}))}), a hub spec, a "
                          "DeepWeightPrior, a PriorKL or None.")
    if isinstance(prior, DeepWeightPriorKL):  # the layer checks again; here the message comes before conversion
        prior.check_kernel_size(ks)
    return prior


def frozen_state_prefixes(model: nn.Module) -> list[str]:
    """State-dict prefixes of the frozen prior decoders inside ``model`` (not saved in checkpoints:
    they are the hub priors' own weights)."""
    out = []
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, DeepWeightPriorKL):
            out.append(f"{name}.decoder." if name else "decoder.")
    return out
