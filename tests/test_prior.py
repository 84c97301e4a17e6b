"""The loaded prior behaves like a frozen distribution over kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dwp_hub
from dwp_hub._api import load_folder
from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.model.prior import DeepWeightPrior

SPECS = {"tiny-7x7": "1.1.0", "tiny-5x5": "1.0.0", "tiny-3x3": "1.0.0"}


@pytest.fixture(params=sorted(SPECS))
def prior(request: pytest.FixtureRequest, _tiny_registry_master: Path) -> DeepWeightPrior:
    """Each tiny prior, loaded fresh (verified) from the session's tiny registry."""
    name = request.param
    return load_folder(_tiny_registry_master / name / SPECS[name], name=name, version=SPECS[name])


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sample_shapes(prior: DeepWeightPrior) -> None:
    k = prior.kernel_size
    assert prior.event_shape == (1, k, k)
    assert prior.sample(7, generator=_g()).shape == (7, 1, k, k)
    assert prior.sample((2, 3), generator=_g()).shape == (2, 3, 1, k, k)
    assert prior.sample(torch.Size([4]), generator=_g()).shape == (4, 1, k, k)
    assert prior.sample((), generator=_g()).shape == (1, k, k)
    assert prior.sample(0).shape == (0, 1, k, k)
    assert prior.sample((2, 0, 3)).shape == (2, 0, 3, 1, k, k)
    x = prior.sample(5, generator=_g())
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


def test_expand(prior: DeepWeightPrior) -> None:
    k = prior.kernel_size
    ex = prior.expand((6, 2))
    assert isinstance(ex, torch.distributions.Distribution)
    assert ex.batch_shape == (6, 2) and ex.event_shape == (1, k, k)
    assert ex.sample(generator=_g()).shape == (6, 2, 1, k, k)
    assert ex.sample((5,), generator=_g()).shape == (5, 6, 2, 1, k, k)
    assert ex.rsample((3,), generator=_g()).shape == (3, 6, 2, 1, k, k)
    assert torch.equal(ex.sample(generator=_g(3)), prior.sample((6, 2), generator=_g(3)))
    assert prior.expand(4).sample().shape == (4, 1, k, k)
    w = ex.sample((5,), generator=_g())
    assert ex.log_prob(w, generator=_g()).shape == (5, 6, 2)
    assert ex.expand((3, 6, 2)).batch_shape == (3, 6, 2)
    g = _g(7)
    e = prior.as_distribution(k=16, noise=False, generator=g).expand((3,))
    assert (e.k, e.noise, e.generator) == (16, False, g)  # expand keeps the estimator's options
    prior.unfreeze()  # (a fresh prior per test) rsample carries gradients to the prior's parameters, sample never
    assert ex.rsample((2,), generator=_g()).requires_grad and not ex.sample((2,), generator=_g()).requires_grad


def test_distribution_contract(prior: DeepWeightPrior) -> None:
    """Shapes are sample_shape + batch_shape + event_shape everywhere; no guessing from dim -3."""
    k = prior.kernel_size
    assert prior.batch_shape == () and prior.event_shape == (1, k, k) and prior.has_rsample
    assert prior.support.event_dim == 3
    one = prior.sample((), generator=_g())  # [1, k, k]: one event
    assert prior.elbo(one, generator=_g()).shape == () and prior.log_prob(one, k=8, generator=_g()).shape == ()
    two = prior.sample(2, generator=_g())
    assert prior.elbo(two, generator=_g()).shape == (2,)
    with pytest.raises(UnsupportedLayerError, match=r"unsqueeze\(-3\)"):
        prior.log_prob(torch.zeros(2, 3, k, k))  # a conv weight [out, in, k, k] must say which dims are batch
    d = prior.as_distribution(k=16, generator=_g(5))
    assert isinstance(d, torch.distributions.Distribution) and d.sample((4,)).shape == (4, 1, k, k)
    means = prior.as_distribution(noise=False, generator=_g(5))  # its noise flag and generator are used
    assert torch.equal(means.sample((4,)), prior.sample(4, generator=_g(5), noise=False))
    assert torch.equal(prior.as_distribution(generator=_g(5)).sample((4,)), prior.sample(4, generator=_g(5)))
    x = d.sample((4,))
    assert torch.equal(d.log_prob(x, generator=_g(1)), d.log_prob(x, generator=_g(1)))  # reproducible estimate
    assert torch.equal(prior.iw_log_prob(x, k=16, generator=_g(1)), d.log_prob(x, generator=_g(1)))
    # without one, log_prob uses the distribution's own generator (as sample does): reproducible from its seed
    seeded = prior.as_distribution(k=16, generator=_g(1))
    assert torch.equal(seeded.log_prob(x), prior.log_prob(x, k=16, generator=_g(1)))


def test_sample_like(prior: DeepWeightPrior) -> None:
    k = prior.kernel_size
    w = torch.empty(8, 3, k, k, dtype=torch.float64)
    out = prior.sample_like(w, generator=_g(1))
    assert out.shape == w.shape and out.dtype == torch.float64 and out.device == w.device
    # decoder means by default, drawn per 2-D slice in (out, in) order
    ref = prior.sample((8, 3), generator=_g(1), noise=False).reshape(8, 3, k, k).double()
    assert torch.equal(out, ref)
    assert not torch.equal(prior.sample_like(w, generator=_g(1), noise=True), out)
    for bad in (torch.empty(8, 3, k + 2, k + 2), torch.empty(3, k, k), torch.empty(2, 2, k, k + 1)):
        with pytest.raises(UnsupportedLayerError, match="kernel size|conv weight"):
            prior.sample_like(bad)


def test_seeded_determinism(prior: DeepWeightPrior) -> None:
    for noise in (True, False):
        a = prior.sample(16, generator=_g(42), noise=noise)
        b = prior.sample(16, generator=_g(42), noise=noise)
        c = prior.sample(16, generator=_g(43), noise=noise)
        assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(prior.sample(16, generator=_g(42)), prior.sample(16, generator=_g(42), noise=False))
    # The global RNG is untouched when a generator is given.
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    prior.sample(3, generator=_g(1))
    assert torch.equal(torch.random.get_rng_state(), before)
    # Without a generator, torch.manual_seed controls the draw.
    torch.manual_seed(5)
    x = prior.sample(4)
    torch.manual_seed(5)
    assert torch.equal(prior.sample(4), x)


def test_large_draws_match_small_path(prior: DeepWeightPrior, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big no-grad draws are decoded in chunks; same random stream and values as one batch."""
    from dwp_hub.model import prior as prior_module

    monkeypatch.setattr(prior_module, "_CHUNK", 64)  # the real chunk is 32,768 kernels
    n = 2 * prior_module._CHUNK + 5
    for noise in (False, True):
        chunked = prior.sample(n, generator=_g(9), noise=noise)
        with torch.enable_grad():  # the unchunked path
            whole = prior.rsample(n, generator=_g(9), noise=noise)
        assert chunked.shape == whole.shape == (n, 1, prior.kernel_size, prior.kernel_size)
        torch.testing.assert_close(chunked, whole.detach(), rtol=1e-5, atol=1e-6)
        assert torch.equal(chunked, prior.sample(n, generator=_g(9), noise=noise))


def test_mean_sample_is_decoder_mean(prior: DeepWeightPrior) -> None:
    z = torch.randn(9, prior.z_dim, generator=_g(7))
    mean, var = prior.decode(z)
    # Same z; the fused no-grad path (no variance head, padded GEMM) agrees up to float rounding.
    torch.testing.assert_close(prior.sample(9, generator=_g(7), noise=False), mean, rtol=1e-5, atol=1e-6)
    assert torch.equal(prior.sample(9, generator=_g(7), noise=False), prior.sample(9, generator=_g(7), noise=False))
    assert mean.shape == var.shape == (9, 1, prior.kernel_size, prior.kernel_size) and (var > 0).all()


def test_frozen_by_default(prior: DeepWeightPrior) -> None:
    assert not prior.training and not prior.vae.training
    assert all(not p.requires_grad for p in prior.parameters())
    x = prior.rsample(4, generator=_g())
    assert not x.requires_grad
    kernels = prior.sample(4, generator=_g()).requires_grad_(True)
    elbo = prior.elbo(kernels, generator=_g())
    elbo.sum().backward()  # gradients reach the kernels (a prior term in a loss) ...
    assert kernels.grad is not None and torch.isfinite(kernels.grad).all()
    assert all(p.grad is None for p in prior.parameters())  # ... but never the prior
    prior.unfreeze()
    assert all(p.requires_grad for p in prior.parameters()) and prior.rsample(2, generator=_g()).requires_grad
    prior.freeze()
    assert all(not p.requires_grad for p in prior.parameters()) and not prior.training


def test_to_dtype(prior: DeepWeightPrior) -> None:
    z = torch.randn(5, prior.z_dim, generator=_g(2))
    a, _ = prior.decode(z)
    prior.to(torch.float64)
    assert prior.dtype == torch.float64 and all(p.dtype == torch.float64 for p in prior.parameters())
    b, _ = prior.decode(z)  # z is cast to the prior's dtype
    assert b.dtype == torch.float64 and prior.sample(5, generator=_g(2)).dtype == torch.float64
    torch.testing.assert_close(b.float(), a, atol=1e-5, rtol=1e-4)
    assert prior.elbo(a, generator=_g()).dtype == torch.float64  # inputs are cast to the prior
    prior.to(dtype=torch.float32)
    assert prior.device == torch.device("cpu") and prior.sample(1).dtype == torch.float32
    assert all(not p.requires_grad for p in prior.parameters())  # .to keeps it frozen


def test_load_with_dtype(tiny_registry: Path) -> None:
    p = dwp_hub.load("tiny-3x3", dtype=torch.float64, device="cpu")
    assert p.dtype == torch.float64 and p.sample(2).dtype == torch.float64


def test_elbo_and_log_prob_shapes(prior: DeepWeightPrior) -> None:
    k = prior.kernel_size
    # sample_shape + batch_shape + event_shape (1, k, k) -> sample_shape + batch_shape
    for shape, batch in [((6, 1, k, k), (6,)), ((2, 3, 1, k, k), (2, 3)), ((1, k, k), ())]:
        w = prior.sample(shape[:-3], generator=_g())
        elbo = prior.elbo(w, generator=_g())
        lp = prior.log_prob(w, k=32, generator=_g())
        assert elbo.shape == lp.shape == batch, shape
        assert torch.isfinite(elbo).all() and torch.isfinite(lp).all()
    w = prior.sample(4, generator=_g())
    assert torch.equal(prior.log_prob(w, k=16, generator=_g(1)), prior.log_prob(w, k=16, generator=_g(1)))
    # More importance samples never make the estimate worse on average (up to noise).
    assert prior.log_prob(w, k=256, generator=_g()).mean() >= prior.elbo(w, generator=_g()).mean() - 1.0
    # the estimate is the VAE's importance-weighted one (checked against quadrature in test_vae.py), and k is used
    torch.testing.assert_close(prior.log_prob(w, k=64, generator=_g(2)),
                               prior.vae.iw_log_prob(w, k=64, generator=_g(2)), rtol=0, atol=0)
    assert not torch.equal(prior.log_prob(w, k=1, generator=_g(2)), prior.log_prob(w, k=256, generator=_g(2)))
    # the prior's own samples are far likelier than large random kernels
    samples = prior.sample(256, generator=_g())
    junk = 5 * torch.randn(256, 1, k, k, generator=_g(1))
    assert prior.log_prob(samples, k=256, generator=_g(2)).mean() > prior.log_prob(junk, k=256, generator=_g(2)).mean() + 50
    with pytest.raises(UnsupportedLayerError, match=f"{k}x{k}"):
        prior.elbo(torch.zeros(3, 1, k + 1, k + 1))
    for bad in ((2, 3, k, k), (k, k), (5, k, k)):  # no event dim (1, k, k): refused, never guessed
        with pytest.raises(UnsupportedLayerError, match="event_shape"):
            prior.log_prob(torch.zeros(bad))
    with pytest.raises(UnsupportedLayerError):
        prior.log_prob(torch.zeros(3, 1, k, k + 1))


def test_encode_decode(prior: DeepWeightPrior) -> None:
    w = prior.sample(10, generator=_g())
    mean, var = prior.encode(w)
    assert mean.shape == var.shape == (10, prior.z_dim) and (var > 0).all()
    assert not torch.allclose(mean, prior.encode(w.flip(0))[0])  # each kernel gets its own posterior
    torch.testing.assert_close(prior.encode(w.flip(0))[0], mean.flip(0))
    rec, _ = prior.decode(mean)
    assert rec.shape == w.shape


def test_card_and_repr(prior: DeepWeightPrior) -> None:
    assert prior.card.name in SPECS and prior.kernel_size == prior.card.arch.kernel_size
    assert prior.z_dim == prior.card.arch.z_dim and prior.card.spec in repr(prior)
    summary = prior.state_summary()
    assert summary["name"] == prior.card.name and summary["kernel_size"] == prior.kernel_size
    assert isinstance(prior, torch.nn.Module) and set(prior.state_dict()) == {f"vae.{k}" for k in prior.vae.state_dict()}


def test_plot_kernels_is_public_and_picks_the_format(prior: DeepWeightPrior, tmp_path: Path) -> None:
    from dwp_hub.errors import ConfigError

    k = prior.sample(12, generator=_g())
    assert dwp_hub.plot_kernels(k, tmp_path / "g.png", "t").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dwp_hub.plot_kernels(k, tmp_path / "g.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ConfigError, match="picture format"):
        dwp_hub.plot_kernels(k, tmp_path / "g.npy")


@pytest.mark.parametrize(("prior_acc", "verdict"), [((0.80, 0.82, 0.79), "On this measure the prior helps."),
                                                    ((0.70, 0.72, 0.71), "On this measure the prior hurts."),
                                                    ((0.76, 0.77, 0.76), "On this measure the prior is level")])
def test_model_card_verdict_follows_the_paired_benefit(_tiny_registry_master: Path, prior_acc: tuple[float, ...],
                                                       verdict: str) -> None:
    """The README's transfer verdict: helps / hurts beyond one paired seed std, else level."""
    import dataclasses

    from dwp_hub._render import render_readme
    from dwp_hub.training.transfer import TransferResult, TransferSpec

    card = load_folder(_tiny_registry_master / "tiny-5x5" / "1.0.0").card
    r = TransferResult(TransferSpec(seeds=(0, 1, 2)), prior_acc, (0.75, 0.78, 0.76), split_protocol="x")
    text = render_readme(dataclasses.replace(card, transfer=r.to_card()))
    assert verdict in text and sum(w in text for w in ("prior helps", "prior hurts", "prior is level")) == 1
