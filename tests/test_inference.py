"""Variational inference: Bayesian layers, KL estimators, the fast DWP bound, training, errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import dwp_hub
import dwp_hub.init as dwp_init
from dwp_hub.errors import CheckpointError, TrainingError, UnsupportedLayerError
from dwp_hub.inference import (
    BayesConv2d,
    DeepWeightPriorKL,
    LogUniformKL,
    SparseLogUniformKL,
    StandardNormalKL,
    VIRecipe,
    bayesian_layers,
    bound_gap,
    evaluate,
    fit_deterministic,
    fit_vi,
    kl_divergence,
    kl_terms,
    mean_weights,
    neg_elbo,
    paper_net,
    to_bayesian,
    to_bayesian_report,
)
from dwp_hub.inference.fast import dwp_vae_terms
from dwp_hub.inference.priors import K1, K2, K3
from dwp_hub.model.nets import NetConfig, build_net

_LOG_2PI = math.log(2 * math.pi)


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """These tests run thousands of tiny ops; extra threads only add synchronisation (and stall
    badly on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _layer(out: int = 8, inp: int = 4, k: int = 5, log_s2: float = -4.0, seed: int = 0) -> BayesConv2d:
    torch.manual_seed(seed)
    layer = BayesConv2d(inp, out, k, log_sigma2_init=log_s2)
    with torch.no_grad():
        layer.weight.normal_(0, 0.1)
        layer.log_sigma2.uniform_(log_s2 - 1, log_s2 + 1)
    return layer


def _tiny_data(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10


# -- layers --------------------------------------------------------------------------------
def test_bayes_conv_local_reparameterisation_moments() -> None:
    layer = _layer(out=3, inp=2, k=3, log_s2=-2.0)
    x = torch.rand(4, 2, 9, 9)
    mean = F.conv2d(x, layer.weight, layer.bias)
    var = F.conv2d(x * x, layer.log_sigma2.exp())
    with torch.no_grad():  # one call on 4000 copies: the noise is independent per example
        draws = layer(x.repeat(4000, 1, 1, 1)).view(4000, 4, 3, 7, 7)
    assert layer(x).shape == (4, 3, 7, 7)
    assert torch.allclose(draws.mean(0), mean, atol=4 * var.sqrt().max().item() / math.sqrt(4000))
    assert torch.allclose(draws.var(0), var, rtol=0.15, atol=1e-6)


def test_bayes_conv_deterministic_mode_is_the_mean_conv() -> None:
    layer = _layer()
    x = torch.rand(2, 4, 12, 12)
    expected = F.conv2d(x, layer.weight, layer.bias)
    with mean_weights(layer):
        assert torch.equal(layer(x), expected)
        assert torch.equal(layer(x), expected)
    assert layer.stochastic and not torch.equal(layer(x), expected)
    conv = layer.to_conv()
    assert torch.allclose(conv(x), expected)


def test_bayes_conv_copies_conv_options_and_gradients_flow() -> None:
    conv = nn.Conv2d(6, 4, 3, stride=2, padding=1, dilation=1, groups=2, bias=False, padding_mode="reflect")
    layer = BayesConv2d.from_conv(conv)
    x = torch.rand(2, 6, 10, 10)
    with mean_weights(layer):
        assert torch.allclose(layer(x), conv(x), atol=1e-6)
    layer(x).sum().backward()
    assert layer.weight.grad is not None and layer.log_sigma2.grad is not None
    assert torch.all(layer.log_sigma2 == -10.0)


def test_zero_input_patches_give_finite_gradients() -> None:
    layer = _layer(out=2, inp=1, k=3, log_s2=-10.0)
    x = torch.zeros(1, 1, 6, 6)
    layer(x).sum().backward()
    assert torch.isfinite(layer.log_sigma2.grad).all() and torch.isfinite(layer.weight.grad).all()


# -- KL estimators ---------------------------------------------------------------------------
def test_standard_normal_kl_matches_monte_carlo() -> None:
    layer = _layer(out=2, inp=2, k=3, log_s2=-1.0)
    closed = StandardNormalKL().kl(layer)
    with torch.no_grad():
        s = (0.5 * layer.log_sigma2).exp()
        w = layer.weight + s * torch.randn(20000, *layer.weight.shape)
        log_q = -0.5 * (_LOG_2PI + layer.log_sigma2 + ((w - layer.weight) / s) ** 2)
        log_p = -0.5 * (_LOG_2PI + w**2)
        mc = (log_q - log_p).flatten(1).sum(1)
    # tolerance: 4 Monte Carlo standard errors
    assert abs(mc.mean() - closed) < 4 * mc.std() / math.sqrt(len(mc))
    with torch.no_grad():
        mc2 = (log_q - (-0.5 * (_LOG_2PI + math.log(4.0) + w**2 / 4.0))).flatten(1).sum(1)
    assert abs(mc2.mean() - StandardNormalKL(std=2.0).kl(layer)) < 4 * mc2.std() / math.sqrt(len(mc2))


def test_sparse_log_uniform_kl_formula_and_limits() -> None:
    layer = _layer(out=1, inp=1, k=1)
    with torch.no_grad():
        layer.weight.fill_(0.5)
        layer.log_sigma2.fill_(math.log(0.01))
    log_alpha = math.log(0.01) - math.log(0.25 + 1e-8)
    expected = -(K1 / (1 + math.exp(-(K2 + K3 * log_alpha))) - 0.5 * math.log1p(math.exp(-log_alpha)) - K1)
    assert SparseLogUniformKL().kl(layer).item() == pytest.approx(expected, rel=1e-5)
    kls = []
    for la in (-8.0, -2.0, 0.0, 4.0, 30.0):  # KL decreases with alpha and tends to 0
        with torch.no_grad():
            layer.log_sigma2.fill_(la + math.log(0.25))
        kls.append(SparseLogUniformKL().kl(layer).item())
    assert all(a > b for a, b in zip(kls, kls[1:]))
    assert abs(kls[-1]) < 1e-6 and kls[0] > 3.0


def test_dwp_bound_pieces_match_monte_carlo(tiny_registry: Path) -> None:
    prior = DeepWeightPriorKL(dwp_hub.load("tiny-5x5"), bound="full")
    layer = _layer(out=2, inp=2, k=5, log_s2=-3.0)
    # -H(q) in closed form vs MC
    with torch.no_grad():
        s = (0.5 * layer.log_sigma2).exp()
        w = layer.weight + s * torch.randn(4000, *layer.weight.shape)
        log_q = (-0.5 * (_LOG_2PI + layer.log_sigma2 + ((w - layer.weight) / s) ** 2)).flatten(1).sum(1)
    assert abs(log_q.mean() - prior.neg_entropy(layer)) < 4 * log_q.std() / math.sqrt(len(log_q))
    # the bound equals -H(q) + E_q E_r[log r(z|w) - log p(z) - log p(w|z)] estimated by brute force
    with torch.no_grad():
        est = torch.stack([prior.kl(layer) for _ in range(300)])
        ws = layer.sample_weight().reshape(-1, 1, 5, 5).repeat(1, 1, 1, 1)
        brute = []
        for _ in range(300):
            ws = layer.sample_weight().reshape(-1, 1, 5, 5)
            mu, var = prior.encoder(ws)
            z = mu + var.sqrt() * torch.randn_like(mu)
            log_r = (-0.5 * (_LOG_2PI + var.log() + (z - mu) ** 2 / var)).sum(1)
            log_pz = (-0.5 * (_LOG_2PI + z**2)).sum(1)
            w_mu, w_var = prior.decoder(z)
            log_pw = (-0.5 * (_LOG_2PI + w_var.log() + (ws - w_mu) ** 2 / w_var)).flatten(1).sum(1)
            brute.append(prior.neg_entropy(layer) + (log_r - log_pz - log_pw).sum())
        brute_t = torch.stack(brute)
    se = math.sqrt(est.var() / len(est) + brute_t.var() / len(brute_t))
    assert abs(est.mean() - brute_t.mean()) < 4 * se


def test_dwp_bound_is_above_the_importance_weighted_kl(tiny_registry: Path) -> None:
    model = to_bayesian(nn.Sequential(nn.Conv2d(1, 4, 7), nn.Conv2d(4, 4, 5)),
                        {7: "tiny-7x7", 5: "tiny-5x5"}, bound="full", log_sigma2_init=-6.0)
    gaps = bound_gap(model, k=200, max_kernels=None, generator=torch.Generator().manual_seed(0))
    assert set(gaps) == {"0", "1"}
    for g in gaps.values():
        assert math.isfinite(g.kl_bound) and math.isfinite(g.kl_iw)
        assert g.gap > -0.05 * g.kernels  # >= 0 up to Monte Carlo noise (a few hundredths of a nat per kernel)
        assert g.kernels_used == g.kernels


def test_fast_bound_is_unbiased(tiny_registry: Path) -> None:
    """Mean of the fast estimator over many draws equals the full sum's mean (within 4 standard errors;
    about 1% of the value here, so a wrong n/m scaling or a biased subset would fail)."""
    p = dwp_hub.load("tiny-5x5")
    layer = _layer(out=8, inp=4, k=5, log_s2=-5.0)  # 32 kernels
    full = DeepWeightPriorKL(p, bound="full")  # every copy starts from the prior's encoder
    with torch.no_grad():
        ref = torch.stack([dwp_vae_terms([(layer, full)])[0] for _ in range(100)])
        for sampler in ("uniform", "cycle"):
            fast = DeepWeightPriorKL(p, kernels_per_step=4, sampler=sampler)
            assert fast.subset_size(layer.n_kernels) == 4
            est = torch.stack([dwp_vae_terms([(layer, fast)])[0] for _ in range(500)])
            se = math.sqrt(est.var() / len(est) + ref.var() / len(ref))
            assert abs(est.mean() - ref.mean()) < 4 * se, (sampler, est.mean(), ref.mean(), se)
            assert est.std() > ref.std()  # it is a subsampled estimate


@pytest.mark.parametrize("control_variate", [False, True])
def test_fast_bound_gradients_are_unbiased(tiny_registry: Path, control_variate: bool) -> None:
    """Mean gradient (projected on a fixed direction) of the fast bound equals the full bound's (4 SE)."""
    p = dwp_hub.load("tiny-5x5")
    layer = _layer(out=4, inp=4, k=5, log_s2=-5.0)  # 16 kernels
    direction = torch.randn(layer.weight.shape, generator=torch.Generator().manual_seed(1))

    def draws(prior: DeepWeightPriorKL, r: int) -> torch.Tensor:
        out = []
        for _ in range(r):
            layer.zero_grad()
            (2.0 * dwp_vae_terms([(layer, prior)])[0]).backward()  # the factor 2 exercises the scale hook
            out.append((layer.weight.grad * direction).sum() + layer.log_sigma2.grad.sum())
        return torch.stack(out)

    full = DeepWeightPriorKL(p, bound="full")
    fast = DeepWeightPriorKL(p, kernels_per_step=4, control_variate=control_variate)
    ref, est = draws(full, 100), draws(fast, 500)
    se = math.sqrt(est.var() / len(est) + ref.var() / len(ref))
    assert abs(est.mean() - ref.mean()) < 4 * se, (est.mean(), ref.mean(), se)
    if control_variate:
        assert layer.dwp_cv_seen.all()  # the control-variate memory is a buffer of the layer


def test_cycle_sampler_visits_every_kernel_once_per_cycle(tiny_registry: Path) -> None:
    prior = DeepWeightPriorKL(dwp_hub.load("tiny-5x5"), kernels_per_step=6)
    layer = _layer(out=4, inp=4, k=5)  # 16 kernels: blocks of 6, 6, 4 per cycle
    blocks = [prior.select(layer) for _ in range(9)]  # 3 cycles
    assert [len(b) for b in blocks] == [6, 6, 4] * 3
    for c in range(3):
        assert torch.equal(torch.cat(blocks[3 * c : 3 * c + 3]).sort().values, torch.arange(16))


def test_layers_sharing_a_prior_are_batched_and_match_separate_calls(tiny_registry: Path) -> None:
    p = dwp_hub.load("tiny-5x5")
    a, b = _layer(seed=1), _layer(out=4, seed=2)
    pa, pb = DeepWeightPriorKL(p, bound="full"), DeepWeightPriorKL(p, bound="full")
    torch.manual_seed(5)
    together = dwp_vae_terms([(a, pa), (b, pb)])
    torch.manual_seed(5)
    sep_a = dwp_vae_terms([(a, pa)])[0]
    assert pa.decoder is pb.decoder
    assert torch.allclose(together[0], sep_a, rtol=1e-5)
    assert together[1].shape == ()


def test_reverse_model_trains_decoder_stays_frozen(tiny_registry: Path) -> None:
    p = dwp_hub.load("tiny-5x5")
    before = {k: v.clone() for k, v in p.vae.state_dict().items()}
    model = to_bayesian(nn.Sequential(nn.Conv2d(2, 3, 5)), {5: p})
    prior = model[0].prior
    assert all(q.requires_grad for q in prior.encoder.parameters())
    assert not any(q.requires_grad for q in prior.decoder.parameters())
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], 1e-2)
    for _ in range(3):
        opt.zero_grad()
        kl_divergence(model).backward()
        opt.step()
    after = p.vae.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # hub prior untouched (encoder was copied)
    enc_moved = any(not torch.equal(x, y) for x, y in zip(prior.encoder.state_dict().values(),
                                                         p.vae.encoder.state_dict().values()))
    assert enc_moved


# -- conversion ------------------------------------------------------------------------------
def test_to_bayesian_fconv_by_kernel_size_and_name(tiny_registry: Path) -> None:
    net = build_net(NetConfig("fconv", (4, 8)))
    model = to_bayesian(net, {7: "tiny-7x7", 5: "tiny-5x5"})
    names = {n: type(m.prior).__name__ for n, m in bayesian_layers(model)}
    assert names == {"0": "DeepWeightPriorKL", "3": "DeepWeightPriorKL"}
    assert "tiny-5x5@1.0.0" in str(to_bayesian_report(model))
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    terms = kl_terms(model)
    assert set(terms) == {"0", "3"} and all(torch.isfinite(v) for v in terms.values())
    loss = neg_elbo(out, torch.tensor([0, 1, 2]), 50, kl_divergence(model))
    loss.backward()

    net2 = build_net(NetConfig("fconv", (4, 8)))
    model2 = to_bayesian(net2, {"0": "log-uniform", "3": None})
    assert [n for n, _ in bayesian_layers(model2)] == ["0"]
    assert isinstance(model2[0].prior, LogUniformKL) and isinstance(model2[3], nn.Conv2d)


def test_to_bayesian_auto_uses_hub_priors_by_kernel_size_else_default(tiny_registry: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dwp_init, "AUTO_PRIORS", {7: "tiny-7x7", 5: "missing-5x5"})
    model = to_bayesian(build_net(NetConfig("fconv", (4, 8))), "auto", default="log-uniform")
    assert isinstance(model[0].prior, DeepWeightPriorKL) and "tiny-7x7" in model[0].prior.describe()
    assert isinstance(model[3].prior, LogUniformKL)


def test_to_bayesian_torchvision_resnet(tiny_registry: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=10)
    n_convs = sum(isinstance(m, nn.Conv2d) for m in net.modules())
    model = to_bayesian(net, {3: "tiny-3x3", "layer4.*": "standard-normal"}, default="log-uniform",
                        kernels_per_step=16)
    layers = dict(bayesian_layers(model))
    assert len(layers) == n_convs
    assert isinstance(layers["conv1"].prior, LogUniformKL)                 # 7x7, no prior given
    assert isinstance(layers["layer1.0.conv1"].prior, DeepWeightPriorKL)   # 3x3
    assert isinstance(layers["layer4.0.conv1"].prior, StandardNormalKL)    # pattern beats size
    assert isinstance(layers["layer2.0.downsample.0"].prior, LogUniformKL)  # 1x1
    shared = {id(m.prior.decoder) for m in layers.values() if isinstance(m.prior, DeepWeightPriorKL)}
    assert len(shared) == 1  # one hub prior loaded once: all 3x3 layers share a decoder call
    model.eval()
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(kl_divergence(model))


def test_to_bayesian_errors(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dwp_init, "AUTO_PRIORS", {5: "tiny-5x5"})
    with pytest.raises(UnsupportedLayerError, match="no nn.Conv2d"):
        to_bayesian(nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(UnsupportedLayerError, match="5x5 kernels but tiny-7x7"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "tiny-7x7", 5: "tiny-7x7"})
    with pytest.raises(UnsupportedLayerError, match="no deep weight prior for 7x7"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), "dwp")
    with pytest.raises(UnsupportedLayerError, match="left deterministic"):
        to_bayesian(build_net(NetConfig("fconv", (4, 8))), {7: "standard-normal"}, default=None, strict=True)


# -- training ------------------------------------------------------------------------------
def test_fit_vi_learns_and_evaluates(tiny_registry: Path) -> None:
    x, y = _tiny_data(20)
    model = paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(4, 8), kernels_per_step=8)
    recipe = VIRecipe(epochs=40, lr=1e-2, eval_mc=3, checkpoint_every=1)
    result = fit_vi(model, x, y, recipe, x_eval=x, y_eval=y, progress=False)
    assert result.steps == 40 and result.objective == "vi" and len(result.history) == 40
    assert set(result.metrics) == {"acc_ensemble", "acc_mean", "nll_ensemble"}
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"] and last["data"] < first["data"]
    assert result.final["loss"] == pytest.approx(result.final["data"] + result.final["kl"], rel=1e-4)
    det = fit_deterministic(paper_net("deterministic", widths=(4, 8)), x, y, VIRecipe(epochs=40, lr=1e-2),
                            x_eval=x, y_eval=y, progress=False)
    assert det.objective == "deterministic" and "l2" in det.final
    assert det.metrics["acc_ensemble"] == det.metrics["acc_mean"]


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tiny_registry: Path, tmp_path: Path) -> None:
    x, y = _tiny_data(30)
    recipe = VIRecipe(epochs=6, batch_size=16, lr=1e-2, checkpoint_every=4, seed=3)  # 2 steps per epoch

    def build() -> nn.Module:
        return paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(2, 4), kernels_per_step=3)

    straight = fit_vi(build(), x, y, recipe, checkpoint=tmp_path / "a.safetensors", progress=False).model

    def crash(step: int, record: dict[str, float]) -> None:
        if step == 8:  # records are made every checkpoint_every steps, before the checkpoint is written
            raise KeyboardInterrupt

    ck = tmp_path / "b.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False, callback=crash)
    resumed = fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False)
    assert resumed.resumed_from == 4 and resumed.steps == 12
    a, b = straight.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(CheckpointError, match="different run"):
        fit_vi(build(), x, y, VIRecipe(epochs=7, batch_size=16), checkpoint=ck, progress=False)
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        fit_vi(build(), x, y, recipe, checkpoint=tmp_path / "bad.safetensors", progress=False)


def test_training_errors_name_step_and_term() -> None:
    x, y = _tiny_data(10)
    model = paper_net("standard-normal", widths=(2, 4))
    with pytest.raises(TrainingError, match="empty"):
        fit_vi(model, x[:0], y[:0], VIRecipe(epochs=1), progress=False)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"Step 0 \(epoch 0\): the data term"):
        fit_vi(model, bad, y, VIRecipe(epochs=1), progress=False)
    with torch.no_grad():  # sigma^2 = 0: the data term stays finite, the KL (-log sigma^2) does not
        model[3].log_sigma2[0, 0, 0, 0] = float("-inf")
    with pytest.raises(TrainingError, match=r"Step 0 .*KL term of layer '3'"):
        fit_vi(model, x, y, VIRecipe(epochs=1), progress=False)
    with pytest.raises(TrainingError, match="to_bayesian"):
        fit_vi(paper_net("deterministic", widths=(2, 4)), x, y, VIRecipe(epochs=1), progress=False)
    with pytest.raises(TrainingError, match="plain network"):
        fit_deterministic(paper_net("log-uniform", widths=(2, 4)), x, y, VIRecipe(epochs=1), progress=False)


def test_evaluate_ensemble_differs_from_mean_weights() -> None:
    model = paper_net("standard-normal", widths=(2, 4))
    for _, layer in bayesian_layers(model):
        with torch.no_grad():
            layer.log_sigma2.fill_(0.0)
    x, y = _tiny_data(40)
    m = evaluate(model, x, y, mc=4)
    assert 0 <= m["acc_ensemble"] <= 1 and 0 <= m["acc_mean"] <= 1 and m["nll_ensemble"] > 0
    assert all(layer.stochastic for _, layer in bayesian_layers(model))  # modes restored


def test_cli_vi_smoke(tiny_registry: Path, data_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dwp_hub.cli import app

    ck = tmp_path / "run.safetensors"
    args = ["vi", "--prior", "dwp", "-n", "20", "--epochs", "2", "--dwp", "7=tiny-7x7", "--dwp", "5=tiny-5x5",
            "--widths", "4,8", "--eval-mc", "2", "--checkpoint", str(ck), "--json", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert '"acc_ensemble"' in res.output and ck.exists()
    res = CliRunner().invoke(app, ["vi", "--dwp", "5", "--epochs", "1"])
    assert res.exit_code != 0 and "KERNEL_SIZE=SPEC" in res.output
