"""The kernel VAE: exact parameter counts of the paper's architectures, shapes, finite bounds."""

from __future__ import annotations

import math

import pytest
import torch

from dwp_hub.card import ArchConfig
from dwp_hub.errors import CardError
from dwp_hub.model.vae import KernelVAE, count_parameters, gaussian_log_prob, kl_to_standard_normal

PAPER_7X7 = ArchConfig("conv7", 7, 2, 32)
PAPER_5X5 = ArchConfig("conv5", 5, 4, 64)
CIFAR3X3_V1_0_0 = ArchConfig("mlp", 3, 4, 64)
RELU_3X3 = ArchConfig("mlp", 3, 4, 32, "relu")


@pytest.mark.parametrize(
    ("arch", "encoder", "decoder"),
    [
        (PAPER_7X7, 56_004, 56_674),  # recipe-and-results.md, paper Table 1
        (PAPER_5X5, 260_040, 304_194),
        # 3x3 mlp: enc 9*64+64 + 64*64+64 + 2*(64*4+4); dec 4*64+64 + 64*64+64 + 2*(64*9+9)
        (CIFAR3X3_V1_0_0, 5_320, 5_650),
    ],
    ids=["conv7", "conv5", "mlp3"],
)
def test_exact_parameter_counts(arch: ArchConfig, encoder: int, decoder: int) -> None:
    vae = KernelVAE(arch)
    assert count_parameters(vae.encoder) == encoder
    assert count_parameters(vae.decoder) == decoder
    assert count_parameters(vae) == encoder + decoder


def test_mlp_counts_follow_formula() -> None:
    for k, z, h in [(3, 4, 16), (3, 8, 128), (4, 2, 32)]:
        vae = KernelVAE(ArchConfig("mlp", k, z, h))
        enc = (k * k * h + h) + (h * h + h) + 2 * (h * z + z)
        dec = (z * h + h) + (h * h + h) + 2 * (h * k * k + k * k)
        assert (count_parameters(vae.encoder), count_parameters(vae.decoder)) == (enc, dec)


@pytest.mark.parametrize("arch", [PAPER_7X7, PAPER_5X5, CIFAR3X3_V1_0_0, ArchConfig("mlp", 4, 3, 8), RELU_3X3,
                                  ArchConfig("conv7", 7, 2, 4, "relu")],
                         ids=["conv7", "conv5", "mlp3", "mlp4", "mlp3-relu", "conv7-relu"])
def test_shapes_and_positive_variances(arch: ArchConfig) -> None:
    torch.manual_seed(0)
    vae = KernelVAE(arch)
    k, n = arch.kernel_size, 11
    w = torch.randn(n, 1, k, k) * 0.1
    mu, var = vae.encoder(w)
    assert mu.shape == var.shape == (n, arch.z_dim)
    assert (var > 0).all()
    w_mu, w_var = vae.decoder(torch.randn(n, arch.z_dim))
    assert w_mu.shape == w_var.shape == (n, 1, k, k)
    assert (w_var > 0).all()


@pytest.mark.parametrize("arch", [PAPER_7X7, PAPER_5X5, CIFAR3X3_V1_0_0, RELU_3X3], ids=["conv7", "conv5", "mlp3", "mlp3-relu"])
@pytest.mark.parametrize("chunk", [3, 4096])
def test_fused_decoder_means_match_the_module(arch: ArchConfig, chunk: int) -> None:
    """``mean`` / ``mean_into`` (no variance head, fused MLP) equal the full decoder's mean."""
    torch.manual_seed(0)
    dec = KernelVAE(arch).decoder.eval()
    k, n = arch.kernel_size, 10
    z = torch.randn(n, arch.z_dim)
    ref = dec(z)[0]
    torch.testing.assert_close(dec.mean(z), ref)
    out = torch.full((n, k * k), float("nan"))
    assert dec.mean_into(z, out, chunk=chunk) is out
    torch.testing.assert_close(out.reshape(n, 1, k, k), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", [PAPER_7X7, PAPER_5X5, CIFAR3X3_V1_0_0], ids=["conv7", "conv5", "mlp3"])
def test_elbo_and_iw_finite_and_ordered(arch: ArchConfig) -> None:
    torch.manual_seed(0)
    vae = KernelVAE(arch).eval()
    k = arch.kernel_size
    w = torch.randn(6, 1, k, k) * 0.1
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        elbo = vae.elbo(w, generator=gen)
        iw = vae.iw_log_prob(w, k=64, generator=gen)
        iw_chunked = vae.iw_log_prob(w, k=64, generator=torch.Generator().manual_seed(1), chunk=64)
    assert elbo.shape == iw.shape == (6,)
    assert torch.isfinite(elbo).all() and torch.isfinite(iw).all()
    assert torch.isfinite(iw_chunked).all()
    # The IW bound with K=64 is (up to Monte-Carlo noise) above the 1-sample ELBO on average.
    many = torch.stack([vae.elbo(w, generator=gen) for _ in range(8)]).mean(0)
    assert iw.mean() >= many.mean() - 1.0


@pytest.mark.parametrize("chunk", [20_000, 5_000], ids=["one-chunk", "kernel-by-kernel"])
def test_iw_log_prob_converges_to_the_marginal_by_quadrature(chunk: int) -> None:
    """With z in 2-D, log p(w) = log of the integral of p(w|z) p(z) dz is a sum over a fine grid: the importance-weighted
    estimate must reach it (an estimate that ignored ``k`` is off by up to 0.8 nats here)."""
    torch.manual_seed(0)
    vae = KernelVAE(ArchConfig("mlp", 3, 2, 16)).eval()
    with torch.no_grad():
        mean, var = vae.decoder(torch.randn(4, 2, generator=torch.Generator().manual_seed(2)))
        w = mean + var.sqrt() * torch.randn(mean.shape, generator=torch.Generator().manual_seed(3))
        h = 0.05
        grid = torch.arange(-7.0, 7.0 + h / 2, h, dtype=torch.float64)
        z = torch.cartesian_prod(grid, grid)
        dec_mean, dec_var = (t.double() for t in vae.decoder(z.float()))
        log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
        want = torch.stack([
            torch.logsumexp(torch.distributions.Normal(dec_mean, dec_var.sqrt()).log_prob(x.expand_as(dec_mean))
                            .flatten(1).sum(1) + log_pz, 0) + 2 * math.log(h)
            for x in w.double()
        ])
        got = vae.iw_log_prob(w, k=5000, generator=torch.Generator().manual_seed(1), chunk=chunk)
    torch.testing.assert_close(got.double(), want, atol=0.02, rtol=0)


def test_elbo_seeded_determinism_and_gradients() -> None:
    vae = KernelVAE(ArchConfig("mlp", 3, 4, 16))
    w = torch.randn(5, 1, 3, 3)
    a = vae.elbo(w, generator=torch.Generator().manual_seed(3))
    b = vae.elbo(w, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    (-a.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in vae.parameters())


def test_gaussian_helpers_match_torch_distributions() -> None:
    x, m, v = torch.randn(7), torch.randn(7), torch.rand(7) + 0.1
    ref = torch.distributions.Normal(m, v.sqrt())
    torch.testing.assert_close(gaussian_log_prob(x, m, v), ref.log_prob(x))
    std = torch.distributions.Normal(torch.zeros(7), torch.ones(7))
    torch.testing.assert_close(kl_to_standard_normal(m, v), torch.distributions.kl_divergence(ref, std))


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "conv9", "kernel_size": 9, "z_dim": 2, "hidden": 8}, {"kind": "conv7", "kernel_size": 5, "z_dim": 2, "hidden": 8},
     {"kind": "conv5", "kernel_size": 7, "z_dim": 2, "hidden": 8}, {"kind": "mlp", "kernel_size": 3, "z_dim": 0, "hidden": 8},
     {"kind": "mlp", "kernel_size": 0, "z_dim": 2, "hidden": 8}, {"kind": "mlp", "kernel_size": 3, "z_dim": 2, "hidden": 0},
     {"kind": "mlp", "kernel_size": 3, "z_dim": 2, "hidden": 8, "activation": "gelu"}],
)
def test_bad_arch_config_rejected(kwargs: dict) -> None:
    with pytest.raises(CardError):
        ArchConfig(**kwargs)


def test_activation_choice_builds_that_activation_and_defaults_to_the_papers_elu() -> None:
    """A card without ``activation`` means ELU (every card written before the field existed)."""
    assert ArchConfig("mlp", 3, 4, 8).activation == "elu"
    for act, cls in (("elu", torch.nn.ELU), ("relu", torch.nn.ReLU)):
        vae = KernelVAE(ArchConfig("mlp", 3, 4, 8, act))
        acts = [m for m in vae.modules() if isinstance(m, (torch.nn.ELU, torch.nn.ReLU))]
        assert acts and all(isinstance(m, cls) for m in acts)  # dwp-hub's ELU subclasses nn.ELU
    # The same weights decode differently under the two activations (the field is not ignored).
    elu, relu = KernelVAE(ArchConfig("mlp", 3, 4, 8)), KernelVAE(ArchConfig("mlp", 3, 4, 8, "relu"))
    relu.load_state_dict(elu.state_dict())
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(elu.decoder.mean(z), relu.decoder.mean(z))


def test_fast_elu_matches_torch_elu_in_value_and_gradient() -> None:
    """The exp-based ELU of the kernel VAEs equals torch's ELU to float32 precision, gradient too."""
    from dwp_hub.model.vae import ELU, elu_fast_

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(4096, generator=g) * 3).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ELU()(x), torch.nn.functional.elu(x_ref)
    assert torch.allclose(y, y_ref, atol=2e-7, rtol=1e-6)
    upstream = torch.randn(4096, generator=g)
    y.backward(upstream)
    y_ref.backward(upstream)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        z = x.detach().clone()
        assert elu_fast_(z) is z and torch.allclose(z, y_ref.detach(), atol=2e-7)


def test_elbo_is_one_reparameterised_sample_of_the_reconstruction_minus_the_kl_to_a_standard_normal() -> None:
    """The per-kernel ELBO, written out with torch.distributions from the same noise: the KL enters with sign -1
    and weight 1, z = mean + sqrt(var) * eps, and the reconstruction sums over every kernel entry."""
    torch.manual_seed(0)
    vae = KernelVAE(ArchConfig("mlp", 3, 4, 16)).eval()
    w = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.2
    with torch.no_grad():
        got = vae.elbo(w, generator=torch.Generator().manual_seed(7))
        mu, var = vae.encoder(w)
        z = mu + var.sqrt() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(7))
        w_mu, w_var = vae.decoder(z)
        rec = torch.distributions.Normal(w_mu, w_var.sqrt()).log_prob(w).sum((1, 2, 3))
        kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu, var.sqrt()),
                                               torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert (kl > 1e-3).all()  # the KL term is not negligible here, so its weight and sign show
    torch.testing.assert_close(got, rec - kl)
