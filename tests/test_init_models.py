"""``init_model`` on whole architectures: the paper's nets at every width, torchvision ResNet-18 and
MobileNetV2, scale policies, seeding, and dtype / device behaviour.

Uses the tiny priors of the ``tiny_registry`` fixture, passed explicitly (never ``"auto"``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from dwp_hub._api import load
from dwp_hub.errors import UnsupportedLayerError
from dwp_hub.init import init_, init_model
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.model.prior import DeepWeightPrior

torchvision = pytest.importorskip("torchvision")


@pytest.fixture()
def priors(tiny_registry: Path) -> dict[int, DeepWeightPrior]:
    return {7: load("tiny-7x7@1.1.0"), 5: load("tiny-5x5"), 3: load("tiny-3x3")}


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _convs(net: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))}


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# -- the paper's nets ------------------------------------------------------------------------------
@pytest.mark.parametrize("widths", [(2, 8), (4, 16), (8, 32), (16, 64), (32, 128), (3, 5)])
def test_paper_fconv_every_width(priors: dict[int, DeepWeightPrior], widths: tuple[int, int]) -> None:
    """The Fig. 3a widths (32, 128)·k for k = 1/16 ... 1, and an odd pair: each conv gets its prior,
    and each layer equals one draw of ``out·in`` kernels, in model order from one generator."""
    net = build_net(NetConfig("fconv", widths))
    before = _snapshot(net)
    report = init_model(net, {7: priors[7], 5: priors[5]}, generator=_g(3))
    h0, h1 = widths
    assert [(li.name, li.shape, li.prior) for li in report.initialized] == [
        ("0", (h0, 1, 7, 7), "tiny-7x7@1.1.0"), ("3", (h1, h0, 5, 5), "tiny-5x5@1.0.0")]
    assert report.skipped == []
    g = _g(3)
    expect0 = priors[7].sample((h0, 1), generator=g, noise=False).reshape(h0, 1, 7, 7)
    expect3 = priors[5].sample((h1, h0), generator=g, noise=False).reshape(h1, h0, 5, 5)
    assert torch.equal(net[0].weight, expect0) and torch.equal(net[3].weight, expect3)
    after = net.state_dict()
    for key in ("0.bias", "3.bias", "7.weight", "7.bias"):  # biases and the classifier untouched
        assert torch.equal(after[key], before[key])


def test_kernel_slices_are_independent_draws(priors: dict[int, DeepWeightPrior]) -> None:
    """Every [i, j] slice is its own sample: no two slices coincide, for any channel counts, and
    the per-slice mean over a large layer is centred like the prior's own samples."""
    for cin, cout in [(1, 1), (1, 9), (7, 2), (3, 64), (64, 3)]:
        conv = nn.Conv2d(cin, cout, 5)
        init_(conv, priors[5], generator=_g(cin * 100 + cout))
        flat = conv.weight.detach().reshape(cin * cout, -1)
        assert torch.isfinite(flat).all()
        assert len(torch.unique(flat, dim=0)) == cin * cout
    big = nn.Conv2d(64, 64, 3)
    init_(big, priors[3], generator=_g(1))
    slices = big.weight.detach().reshape(-1, 9)
    ref = priors[3].sample(4096, generator=_g(2), noise=False).reshape(-1, 9)
    # Same distribution as independent prior draws: slice means agree within a few standard errors.
    se = ref.std(0) / math.sqrt(len(ref))
    assert ((slices.mean(0) - ref.mean(0)).abs() < 6 * se * math.sqrt(2)).all()
    # Neighbouring slices (same output channel, consecutive inputs) are not correlated beyond chance.
    a, b = slices[0::2] - slices.mean(0), slices[1::2] - slices.mean(0)
    corr = (a * b).sum() / (a.norm() * b.norm())
    assert abs(corr.item()) < 0.1


def test_cifar_net(priors: dict[int, DeepWeightPrior]) -> None:
    net = build_net(NetConfig("cifar", (8, 16, 16, 32), in_channels=3))
    report = init_model(net, [priors[7], priors[5]], generator=_g())
    assert [(li.name, li.shape) for li in report.initialized] == [
        ("0", (8, 3, 7, 7)), ("3", (16, 8, 5, 5)), ("5", (16, 16, 5, 5))]
    assert torch.isfinite(net(torch.rand(2, 3, 32, 32))).all()


def test_fconv3_with_3x3_prior_and_missing_sizes(priors: dict[int, DeepWeightPrior]) -> None:
    net = build_net(NetConfig("fconv3", (4, 8, 8)))
    report = init_model(net, priors[3], generator=_g())
    assert [li.name for li in report.initialized] == ["0", "3", "6"]
    # Only a 7x7 prior: every 3x3 layer is skipped, reported, and left exactly as it was.
    before = _snapshot(net)
    report = init_model(net, priors[7])
    assert len(report) == 0 and [r for _, r in report.skipped] == ["no prior for 3x3 kernels"] * 3
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    with pytest.raises(UnsupportedLayerError, match="0: no prior for 3x3"):
        init_model(net, priors[7], strict=True)


# -- torchvision ---------------------------------------------------------------------------------------
def test_resnet18_which_layers_get_which_prior(priors: dict[int, DeepWeightPrior]) -> None:
    net = torchvision.models.resnet18(weights=None)
    before = _snapshot(net)
    report = init_model(net, [priors[7], priors[3]], generator=_g(0))
    convs = _convs(net)
    got = {li.name: li.prior for li in report.initialized}
    assert got["conv1"] == "tiny-7x7@1.1.0" and convs["conv1"].weight.shape == (64, 3, 7, 7)
    threes = [n for n, m in convs.items() if m.kernel_size == (3, 3)]
    assert len(threes) == 16 and all(got[n] == "tiny-3x3@1.0.0" for n in threes)
    assert set(got) == {"conv1", *threes}
    assert report.skipped == [(f"layer{i}.0.downsample.0", "no prior for 1x1 kernels") for i in (2, 3, 4)]
    after = net.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {f"{n}.weight" for n in got}  # BN, fc and 1x1 convs untouched
    assert "layer4.1.conv2" in str(report) and "[512, 512, 3, 3]" in str(report)
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(torch.rand(2, 3, 32, 32))).all()


def test_mobilenet_v2_grouped_layers_are_skipped(priors: dict[int, DeepWeightPrior]) -> None:
    """Depthwise (grouped) 3x3 convs are skipped with the reason; ``init_`` initialises one on request."""
    net = torchvision.models.mobilenet_v2(weights=None)
    report = init_model(net, priors[3], generator=_g())
    assert [li.name for li in report.initialized] == ["features.0.0"]  # the only dense 3x3 conv
    reasons = dict(report.skipped)
    depthwise = {n: m for n, m in _convs(net).items() if m.groups > 1}
    assert len(depthwise) == 17
    assert all(reasons[n] == f"grouped convolution (groups={m.groups})" for n, m in depthwise.items())
    assert all(r == "no prior for 1x1 kernels" for n, r in reasons.items() if n not in depthwise)
    conv = next(iter(depthwise.values()))
    with pytest.raises(UnsupportedLayerError, match="grouped"):
        init_(conv, priors[3])
    init_(conv, priors[3], generator=_g(), allow_grouped=True)
    assert conv.weight.shape[1] == 1 and torch.equal(conv.weight, priors[3].sample_like(conv.weight, generator=_g()))


def test_dilated_layers_in_a_model(priors: dict[int, DeepWeightPrior]) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, dilation=2, padding=2), nn.ConvTranspose2d(8, 4, 3))
    before = net[1].weight.detach().clone()
    report = init_model(net, priors[3], generator=_g())
    assert [li.name for li in report.initialized] == ["0", "2"]
    assert report.skipped == [("1", "dilated convolution (dilation=(2, 2))")] and torch.equal(net[1].weight, before)
    init_(net[1], priors[3], allow_dilated=True)
    assert not torch.equal(net[1].weight, before)


def test_model_without_any_matching_prior(priors: dict[int, DeepWeightPrior]) -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, (1, 7)), nn.Conv2d(8, 8, 9))
    report = init_model(net, list(priors.values()))
    assert len(report) == 0
    assert report.skipped == [("0", "no prior for 1x1 kernels"), ("1", "non-square kernel 1x7"),
                              ("2", "no prior for 9x9 kernels")]
    assert "initialised 0 layer(s), skipped 3" in str(report)
    with pytest.raises(UnsupportedLayerError, match="Layers left uninitialised"):
        init_model(net, list(priors.values()), strict=True)


# -- scale policies --------------------------------------------------------------------------------
def test_scale_policies_on_resnet18(priors: dict[int, DeepWeightPrior]) -> None:
    fan = torchvision.models.resnet18(weights=None)
    same = torchvision.models.resnet18(weights=None)
    init_model(fan, priors[3], generator=_g(4), scale="fan_in", gain=math.sqrt(2.0))
    init_model(same, priors[3], generator=_g(4), scale="prior")
    prior_std = priors[3].sample(20000, generator=_g(9), noise=False).std().item()
    for (name, a), b in zip(_convs(fan).items(), _convs(same).values(), strict=True):
        if a.kernel_size != (3, 3):
            continue
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(a.weight)
        assert a.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=1e-3), name
        assert b.weight.std().item() == pytest.approx(prior_std, rel=0.15), name  # the prior's own scale
        ratio = a.weight / b.weight  # same kernels, one factor per layer
        assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-3), name


def test_fan_in_uses_torch_convention_for_transposed_convs(priors: dict[int, DeepWeightPrior]) -> None:
    deconv = nn.ConvTranspose2d(16, 4, 5)  # weight [16, 4, 5, 5]; torch's fan_in is 4·25
    init_(deconv, priors[5], generator=_g(), scale="fan_in", gain=1.0)
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(deconv.weight)
    assert fan_in == 100 and deconv.weight.std().item() == pytest.approx(0.1, rel=1e-4)


# -- reproducibility -------------------------------------------------------------------------------
def test_seeded_reproducibility_resnet18(priors: dict[int, DeepWeightPrior]) -> None:
    nets = [torchvision.models.resnet18(weights=None) for _ in range(2)]
    for net in nets:
        init_model(net, priors[3], generator=_g(7))
    for name, conv in _convs(nets[0]).items():
        assert torch.equal(conv.weight, _convs(nets[1])[name].weight) == (conv.kernel_size == (3, 3))
    other = build_net(NetConfig("fconv3", (4, 8, 8)))
    for seed in (7, 8):
        init_model(other, priors[3], generator=_g(seed))
        if seed == 7:
            first = other[3].weight.detach().clone()
    assert not torch.equal(first, other[3].weight)
    # No generator: torch's global RNG, so torch.manual_seed makes it reproducible too.
    a, b = build_net(NetConfig("fconv", (4, 8))), build_net(NetConfig("fconv", (4, 8)))
    torch.manual_seed(11)
    init_model(a, [priors[7], priors[5]])
    torch.manual_seed(11)
    init_model(b, [priors[7], priors[5]])
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[3].weight, b[3].weight)


def test_init_model_equals_layer_by_layer_init(priors: dict[int, DeepWeightPrior]) -> None:
    """One generator is consumed layer by layer in ``named_modules`` order."""
    a, b = build_net(NetConfig("fconv", (4, 8))), build_net(NetConfig("fconv", (4, 8)))
    init_model(a, [priors[7], priors[5]], generator=_g(5))
    g = _g(5)
    init_(b[0], priors[7], generator=g)
    init_(b[3], priors[5], generator=g)
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[3].weight, b[3].weight)


@pytest.mark.parametrize("options", [{"noise": True}, {"scale": "fan_in", "gain": 0.5}, {"scale": "fan_in"},
                                     {"noise": True, "scale": "fan_in", "gain": 3.0}])
def test_init_model_passes_noise_scale_and_gain_to_each_layer(priors: dict[int, DeepWeightPrior],
                                                              options: dict[str, object]) -> None:
    """init_model's noise / scale / gain reach every layer: the same weights as init_ with those options."""
    a, b = build_net(NetConfig("fconv", (4, 8))), build_net(NetConfig("fconv", (4, 8)))
    init_model(a, [priors[7], priors[5]], generator=_g(5), **options)
    g = _g(5)
    init_(b[0], priors[7], generator=g, **options)
    init_(b[3], priors[5], generator=g, **options)
    assert torch.equal(a[0].weight, b[0].weight) and torch.equal(a[3].weight, b[3].weight)
    plain = build_net(NetConfig("fconv", (4, 8)))
    init_model(plain, [priors[7], priors[5]], generator=_g(5))
    assert not torch.equal(a[3].weight, plain[3].weight)  # each option set changes the weights
    if options.get("scale") == "fan_in":  # default gain: Kaiming-normal's sqrt(2) for ReLU nets
        gain = options.get("gain", math.sqrt(2.0))
        assert a[3].weight.std().item() == pytest.approx(gain / math.sqrt(4 * 25), rel=1e-4)


# -- dtype and device ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_model_dtype_differs_from_prior(priors: dict[int, DeepWeightPrior], dtype: torch.dtype) -> None:
    """A float32 prior initialises a float64 / bfloat16 model: samples are drawn in float32 and cast."""
    net = build_net(NetConfig("fconv", (4, 8))).to(dtype)
    init_model(net, [priors[7], priors[5]], generator=_g(2))
    ref = build_net(NetConfig("fconv", (4, 8)))
    init_model(ref, [priors[7], priors[5]], generator=_g(2))
    for i in (0, 3):
        assert net[i].weight.dtype == dtype and isinstance(net[i].weight, nn.Parameter)
        assert torch.equal(net[i].weight, ref[i].weight.to(dtype))
    out = net(torch.rand(2, 1, 28, 28, dtype=dtype))
    assert out.dtype == dtype and torch.isfinite(out).all()


def test_prior_in_float64(priors: dict[int, DeepWeightPrior]) -> None:
    p64 = load("tiny-3x3", dtype=torch.float64)
    assert p64.dtype == torch.float64
    conv = nn.Conv2d(4, 4, 3)
    init_(conv, p64, generator=_g())
    assert conv.weight.dtype == torch.float32
    assert torch.equal(conv.weight, p64.sample((4, 4), generator=_g(), noise=False).reshape(4, 4, 3, 3).float())


def test_weight_on_another_device_gets_samples_moved(priors: dict[int, DeepWeightPrior],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples are drawn on the prior's device and copied into the weight on its own (here the shape-only
    ``meta`` device, which runs on any machine)."""
    drawn: list[torch.Tensor] = []
    written: list[torch.Tensor] = []
    real_sample, real_copy = DeepWeightPrior.sample, torch.Tensor.copy_
    conv = nn.Conv2d(3, 5, 3, device="meta")

    def sample_spy(self: DeepWeightPrior, *args: object, **kwargs: object) -> torch.Tensor:
        drawn.append(real_sample(self, *args, **kwargs))
        return drawn[-1]

    def copy_spy(self: torch.Tensor, src: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        if self is conv.weight:
            written.append(src)
        return real_copy(self, src, *args, **kwargs)

    monkeypatch.setattr(DeepWeightPrior, "sample", sample_spy)
    monkeypatch.setattr(torch.Tensor, "copy_", copy_spy)
    out = init_(conv, priors[3], generator=_g())
    monkeypatch.undo()
    assert out.device.type == "meta" and out.shape == (5, 3, 3, 3)
    assert len(drawn) == 1 and drawn[0].device.type == "cpu"  # drawn where the prior lives
    assert len(written) == 1 and written[0].shape == (5, 3, 3, 3)  # and written into the meta weight
    want = init_(nn.Conv2d(3, 5, 3), priors[3], generator=_g())  # the same draw into a CPU weight
    assert torch.equal(drawn[0].reshape(5, 3, 3, 3), want.detach())


def test_prior_on_meta_device_is_refused(priors: dict[int, DeepWeightPrior]) -> None:
    ghost = load("tiny-3x3").to("meta")
    conv = nn.Conv2d(2, 2, 3)
    before = conv.weight.detach().clone()
    with pytest.raises(ValueError, match="meta device and holds no weights"):
        init_(conv, ghost)
    with pytest.raises(ValueError, match="meta device"):
        init_model(nn.Sequential(conv), ghost)
    assert torch.equal(conv.weight, before)


def test_generator_on_another_device_is_refused(priors: dict[int, DeepWeightPrior],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A generator must live where the prior draws (pretend the prior is on CUDA)."""
    monkeypatch.setattr(DeepWeightPrior, "device", property(lambda self: torch.device("cuda", 0)))
    conv = nn.Conv2d(2, 2, 3)
    before = conv.weight.detach().clone()
    with pytest.raises(ValueError, match=r"generator is on cpu but tiny-3x3@1.0.0 is on cuda:0.*device='cuda:0'"):
        init_(conv, priors[3], generator=_g())
    assert torch.equal(conv.weight, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_from_cpu_prior_and_back(priors: dict[int, DeepWeightPrior]) -> None:
    net = build_net(NetConfig("fconv", (4, 8))).cuda()
    init_model(net, [priors[7], priors[5]], generator=_g(1))
    ref = build_net(NetConfig("fconv", (4, 8)))
    init_model(ref, [priors[7], priors[5]], generator=_g(1))
    assert net[0].weight.is_cuda and torch.equal(net[0].weight.cpu(), ref[0].weight)
    p_cuda = load("tiny-3x3", device="cuda")
    conv = nn.Conv2d(2, 2, 3)
    init_(conv, p_cuda, generator=torch.Generator(device="cuda").manual_seed(0))
    assert conv.weight.device.type == "cpu"
    with pytest.raises(ValueError, match="generator is on cpu"):
        init_(conv, p_cuda, generator=_g())


def test_auto_skips_a_grayscale_input_prior_on_an_rgb_stem() -> None:
    """priors="auto" must not give resnet18's RGB 7x7 stem the notMNIST first-layer prior silently."""
    torchvision = pytest.importorskip("torchvision")
    import dwp_hub
    from dwp_hub.inference import StandardNormalKL, to_bayesian, to_bayesian_report

    net = torchvision.models.resnet18(num_classes=10)
    report = dwp_hub.init_model(net, "auto", generator=torch.Generator().manual_seed(0))
    skipped = dict(report.skipped)
    assert "conv1" in skipped and "1-channel input layers" in skipped["conv1"] and "3 input channels" in skipped["conv1"]
    assert any(li.name == "layer1.0.conv1" for li in report.initialized)  # the 3x3 layers still get theirs
    model = to_bayesian(torchvision.models.resnet18(num_classes=10), "auto", kernels_per_step=8)
    assert isinstance(model.conv1.prior, StandardNormalKL)
    assert "3 input channels" in str(to_bayesian_report(model))
    gray = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 7))
    assert [li.name for li in dwp_hub.init_model(gray, "auto").initialized] == ["0"]  # grayscale input: used
    # An explicit choice is the user's to make: the same prior, named, initialises the RGB stem.
    rgb = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 7))
    named = dwp_hub.load(dwp_hub.init.AUTO_PRIORS[7])
    assert named.mismatch(rgb[0]) is not None
    report = dwp_hub.init_model(rgb, named, generator=torch.Generator().manual_seed(0))
    assert [li.name for li in report.initialized] == ["0"] and report.skipped == []
    assert torch.equal(rgb[0].weight, named.sample_like(rgb[0].weight, generator=torch.Generator().manual_seed(0)))
