"""``init_`` and ``init_model`` on real modules: the paper's net and a torchvision ResNet-18."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import dwp_hub
from dwp_hub._api import load_folder
from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.init import AUTO_PRIORS, InitReport, init_, init_model
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.model.prior import DeepWeightPrior
from dwp_hub.training.publish import publish


@pytest.fixture()
def p7(_tiny_registry_master: Path) -> DeepWeightPrior:
    return load_folder(_tiny_registry_master / "tiny-7x7" / "1.1.0")


@pytest.fixture()
def p5(_tiny_registry_master: Path) -> DeepWeightPrior:
    return load_folder(_tiny_registry_master / "tiny-5x5" / "1.0.0")


@pytest.fixture()
def p3(_tiny_registry_master: Path) -> DeepWeightPrior:
    return load_folder(_tiny_registry_master / "tiny-3x3" / "1.0.0")


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _paper_net() -> nn.Sequential:
    return build_net(NetConfig("fconv", (32, 128)))


# -- init_ -------------------------------------------------------------------------------------
def test_init_conv_in_place(p3: DeepWeightPrior) -> None:
    conv = nn.Conv2d(4, 6, 3)
    bias = conv.bias.detach().clone()
    weight_obj = conv.weight
    out = init_(conv, p3, generator=_g(1))
    assert out is conv.weight and conv.weight is weight_obj  # in place, same Parameter
    assert conv.weight.requires_grad and isinstance(conv.weight, nn.Parameter)
    assert torch.equal(conv.weight, p3.sample_like(conv.weight, generator=_g(1)))
    assert torch.equal(conv.bias, bias)  # biases untouched
    want = p3.sample_like(conv.weight, generator=_g(2))
    for mode in (torch.no_grad, torch.inference_mode, torch.enable_grad):  # works whatever the grad mode
        with torch.no_grad():
            conv.weight.zero_()
        with mode():
            init_(conv, p3, generator=_g(2))
        assert torch.equal(conv.weight, want) and conv.weight.requires_grad, mode.__name__


def test_init_non_contiguous_weights(p3: DeepWeightPrior) -> None:
    """A channels_last conv (common in timm / AMP models) and a strided weight view get the same kernels as a
    contiguous weight, slice for slice, and keep their memory layout."""
    want = p3.sample_like(torch.empty(6, 4, 3, 3), generator=_g(1))
    conv = nn.Conv2d(4, 6, 3).to(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    init_(conv, p3, generator=_g(1))
    assert torch.equal(conv.weight, want) and conv.weight.is_contiguous(memory_format=torch.channels_last)
    base = torch.zeros(4, 6, 3, 3)
    view = base.transpose(0, 1)  # [6, 4, 3, 3], not contiguous
    assert init_(view, p3, generator=_g(1)) is view and torch.equal(view, want)
    assert torch.equal(base, want.transpose(0, 1))  # written through the view


def test_init_weight_tensor_and_transpose(p5: DeepWeightPrior) -> None:
    w = torch.zeros(3, 2, 5, 5)
    assert init_(w, p5, generator=_g()) is w and torch.equal(w, p5.sample_like(w, generator=_g()))
    deconv = nn.ConvTranspose2d(2, 3, 5)
    init_(deconv, p5, generator=_g())
    assert deconv.weight.shape == (2, 3, 5, 5) and torch.equal(deconv.weight, p5.sample_like(deconv.weight, generator=_g()))


def test_init_noise_flag(p3: DeepWeightPrior) -> None:
    a, b = nn.Conv2d(2, 2, 3), nn.Conv2d(2, 2, 3)
    init_(a, p3, generator=_g(), noise=False)
    init_(b, p3, generator=_g(), noise=True)
    assert not torch.equal(a.weight, b.weight)


def test_init_seeded_reproducibility(p7: DeepWeightPrior) -> None:
    a, b, c = (nn.Conv2d(1, 8, 7) for _ in range(3))
    init_(a, p7, generator=_g(5))
    init_(b, p7, generator=_g(5))
    init_(c, p7, generator=_g(6))
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize(("conv", "match"), [
    (nn.Conv2d(4, 4, 3, groups=2), "grouped"),
    (nn.Conv2d(4, 4, 3, groups=4), "grouped"),  # depthwise
    (nn.Conv2d(4, 4, 3, dilation=2), "dilated"),
    (nn.Conv2d(4, 4, (3, 5)), "non-square"),
    (nn.Conv2d(4, 4, (1, 3)), "non-square"),
    (nn.Conv2d(4, 4, 5), "5x5 kernels but tiny-3x3@1.0.0 is a 3x3 prior"),
    (nn.Conv2d(4, 4, 1), "1x1"),
    (nn.Linear(9, 9), "nn.Conv2d or nn.ConvTranspose2d"),
    (nn.Conv1d(4, 4, 3), "nn.Conv2d or nn.ConvTranspose2d"),
])
def test_init_refuses_unsupported_layers(p3: DeepWeightPrior, conv: nn.Module, match: str) -> None:
    before = conv.weight.detach().clone()
    with pytest.raises(UnsupportedLayerError, match=match):
        init_(conv, p3)
    assert torch.equal(conv.weight, before)  # never half-written


def test_init_refuses_weight_tensor_of_wrong_shape(p3: DeepWeightPrior) -> None:
    for w in (torch.empty(4, 4, 5, 5), torch.empty(4, 3, 3), torch.empty(4, 4, 3, 2)):
        with pytest.raises(UnsupportedLayerError):
            init_(w, p3)


def test_grouped_and_dilated_opt_in(p3: DeepWeightPrior) -> None:
    g = nn.Conv2d(4, 8, 3, groups=4)
    init_(g, p3, generator=_g(), allow_grouped=True)
    assert g.weight.shape == (8, 1, 3, 3) and torch.equal(g.weight, p3.sample_like(g.weight, generator=_g()))
    d = nn.Conv2d(4, 8, 3, dilation=2)
    init_(d, p3, generator=_g(), allow_dilated=True)
    assert torch.equal(d.weight, p3.sample_like(d.weight, generator=_g()))


@pytest.mark.parametrize(("cin", "cout", "gain"), [(16, 32, math.sqrt(2.0)), (3, 64, 1.0), (64, 8, 0.5)])
def test_scale_fan_in(p3: DeepWeightPrior, cin: int, cout: int, gain: float) -> None:
    conv = nn.Conv2d(cin, cout, 3)
    init_(conv, p3, generator=_g(), scale="fan_in", gain=gain)
    target = gain / math.sqrt(cin * 9)
    assert conv.weight.std().item() == pytest.approx(target, rel=1e-4)
    prior_scale = nn.Conv2d(cin, cout, 3)
    init_(prior_scale, p3, generator=_g())
    # Same kernel shapes, only the scale differs.
    ratio = conv.weight / prior_scale.weight
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4, atol=0)


def test_default_gain_is_kaiming_relu(p3: DeepWeightPrior) -> None:
    """``scale="fan_in"`` without a gain gives Kaiming-normal's ReLU std, sqrt(2 / fan_in)."""
    conv = nn.Conv2d(16, 8, 3)
    init_(conv, p3, generator=_g(), scale="fan_in")
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2.0))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / (16 * 9)), rel=1e-4)


def test_bad_scale(p3: DeepWeightPrior) -> None:
    conv = nn.Conv2d(2, 2, 3)
    before = conv.weight.detach().clone()
    with pytest.raises(ValueError, match="fan_in"):
        init_(conv, p3, scale="kaiming")  # type: ignore[arg-type]
    assert torch.equal(conv.weight, before)  # refused before any weight is written


# -- init_model ------------------------------------------------------------------------------------
def test_init_model_paper_net(p7: DeepWeightPrior, p5: DeepWeightPrior) -> None:
    net = _paper_net()
    report = init_model(net, [p7, p5], generator=_g(0))
    assert isinstance(report, InitReport) and len(report) == 2 and report.skipped == []
    assert [(li.name, li.shape, li.prior) for li in report.initialized] == [
        ("0", (32, 1, 7, 7), "tiny-7x7@1.1.0"), ("3", (128, 32, 5, 5), "tiny-5x5@1.0.0")]
    text = str(report)
    assert "initialised 2 layer(s), skipped 0" in text and "tiny-7x7@1.1.0" in text and "[128, 32, 5, 5]" in text
    out = net(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    # Seeded: a second net gets identical weights; another seed does not.
    twin, other = _paper_net(), _paper_net()
    init_model(twin, {7: p7, 5: p5}, generator=_g(0))
    init_model(other, {7: p7, 5: p5}, generator=_g(1))
    for a, b, c in zip(net.state_dict().values(), twin.state_dict().values(), other.state_dict().values(), strict=True):
        if a.ndim == 4:
            assert torch.equal(a, b) and not torch.equal(a, c)


def test_init_model_from_registry_specs(tiny_registry: Path) -> None:
    net = _paper_net()
    report = init_model(net, {7: "tiny-7x7@1.0.0", 5: "tiny-5x5"}, generator=_g())
    assert [li.prior for li in report.initialized] == ["tiny-7x7@1.0.0", "tiny-5x5@1.0.0"]
    with pytest.raises(UnsupportedLayerError, match="priors\\[5\\] is tiny-7x7"):
        init_model(net, {5: "tiny-7x7"})


def test_init_model_resnet18_with_3x3_prior(p3: DeepWeightPrior) -> None:
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None)
    before = {n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, nn.Conv2d)}
    report = init_model(net, p3, generator=_g(0))
    threes = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [li.name for li in report.initialized] == threes and len(threes) == 16
    assert all(li.prior == "tiny-3x3@1.0.0" for li in report.initialized)
    assert dict(report.skipped) == {"conv1": "no prior for 7x7 kernels", "layer2.0.downsample.0": "no prior for 1x1 kernels",
                                    "layer3.0.downsample.0": "no prior for 1x1 kernels",
                                    "layer4.0.downsample.0": "no prior for 1x1 kernels"}
    for n, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            assert torch.equal(m.weight, before[n]) == (n not in threes)
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(1, 3, 64, 64))).all()
    with pytest.raises(UnsupportedLayerError, match="conv1: no prior for 7x7"):
        init_model(net, p3, strict=True)


def test_init_model_skips_and_reports(p3: DeepWeightPrior) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 8, 3, dilation=2),
                        nn.Conv2d(8, 8, (3, 1)), nn.Conv2d(8, 8, 5), nn.ConvTranspose2d(8, 4, 3),
                        nn.Sequential(nn.Conv2d(4, 4, 3)))
    before = [m.weight.detach().clone() for m in net.modules() if hasattr(m, "weight")]
    report = init_model(net, p3, generator=_g())
    assert [li.name for li in report.initialized] == ["0", "5", "6.0"]
    assert report.skipped == [("1", "grouped convolution (groups=8)"), ("2", "dilated convolution (dilation=(2, 2))"),
                              ("3", "non-square kernel 3x1"), ("4", "no prior for 5x5 kernels")]
    after = [m.weight for m in net.modules() if hasattr(m, "weight")]
    assert [torch.equal(a, b) for a, b in zip(before, after, strict=True)] == [False, True, True, True, True, False, False]
    text = str(report)
    assert "skipped 4" in text and "grouped convolution" in text and "- 4" in text


def test_init_model_auto_without_priors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "empty")
    report = init_model(_paper_net())
    assert len(report) == 0 and [r for _, r in report.skipped] == ["no prior for 7x7 kernels", "no prior for 5x5 kernels"]


def test_init_model_auto_uses_registry_names(tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``priors="auto"`` loads :data:`AUTO_PRIORS` by name (tiny priors republished under those names
    in a temp registry; nothing is shipped)."""
    reg = tmp_path / "auto-reg"
    publish(tiny_registry / "tiny-7x7" / "1.1.0", AUTO_PRIORS[7], "0.0.1", reg)
    publish(tiny_registry / "tiny-3x3" / "1.0.0", AUTO_PRIORS[3], "0.0.1", reg)
    monkeypatch.setenv("DWP_HUB_REGISTRY", str(reg))
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "empty")
    net = nn.Sequential(nn.Conv2d(1, 4, 7), nn.Conv2d(4, 4, 5), nn.Conv2d(4, 4, 3))
    report = dwp_hub.init_model(net, generator=_g())
    assert [(li.name, li.prior) for li in report.initialized] == [("0", f"{AUTO_PRIORS[7]}@0.0.1"),
                                                                 ("2", f"{AUTO_PRIORS[3]}@0.0.1")]
    assert report.skipped == [("1", "no prior for 5x5 kernels")]


def test_init_model_errors(p3: DeepWeightPrior) -> None:
    with pytest.raises(UnsupportedLayerError, match="no Conv2d"):
        init_model(nn.Sequential(nn.Linear(2, 2)), p3)
    with pytest.raises(TypeError):
        init_model(nn.Conv2d(1, 1, 3), 3)  # type: ignore[arg-type]
