"""Batched source-training augmentation (dwp_hub.training.augment) against torchvision's per-image maps."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from dwp_hub.training import augment
from dwp_hub.training.augment import affine_grid, augment_batch, elastic_grid, gaussian_blur


def _images(b: int = 12, c: int = 1, h: int = 28, w: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(b, c, h, w)
    x[:, :, 6:22, 9:19] = torch.rand(b, c, 16, 10, generator=g)  # a glyph-like blob away from the border
    return x


def _resample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@pytest.mark.parametrize("params", [
    (0.0, (0, 0), 1.0, (0.0, 0.0)),
    (9.5, (2, -3), 1.07, (4.0, 0.0)),
    (-7.0, (-1, 2), 0.92, (-3.5, 0.0)),
    (30.0, (0, 0), 1.0, (0.0, 12.0)),  # a shear along y too, beyond the recipe's ranges
])
def test_affine_grid_matches_torchvision_affine(params: tuple) -> None:
    angle, translate, scale, shear = params
    x = _images(b=1, c=3, h=28, w=24)  # non-square, several channels
    want = TF.affine(x[0], angle=angle, translate=list(translate), scale=scale, shear=list(shear),
                     interpolation=TF.InterpolationMode.BILINEAR)
    grid = affine_grid(torch.tensor([angle]), torch.tensor([translate], dtype=torch.float64), torch.tensor([scale]),
                       torch.tensor([shear]), (28, 24))
    assert grid.shape == (1, 28, 24, 2)
    torch.testing.assert_close(_resample(x, grid)[0], want, atol=1e-5, rtol=0)


def test_identity_and_whole_pixel_translation_have_their_meaning() -> None:
    x = _images(b=2)
    zero = torch.zeros(2)
    ident = affine_grid(zero, torch.zeros(2, 2), torch.ones(2), torch.zeros(2, 2), (28, 28))
    torch.testing.assert_close(_resample(x, ident), x, atol=1e-5, rtol=0)
    move = torch.tensor([[3.0, -2.0]] * 2)
    shifted = _resample(x, affine_grid(zero, move, torch.ones(2), torch.zeros(2, 2), (28, 28)))
    # content moves 3 pixels right and 2 up
    torch.testing.assert_close(shifted[:, :, 4:26, 12:22], x[:, :, 6:28, 9:19], atol=1e-5, rtol=0)


def test_elastic_grid_matches_torchvision_elastic() -> None:
    x = _images(b=3)
    disp = 0.05 * torch.randn(3, 28, 28, 2, generator=torch.Generator().manual_seed(1))
    got = _resample(x, elastic_grid(disp))
    for i in range(3):
        want = TF.elastic(x[i], disp[i : i + 1], interpolation=TF.InterpolationMode.BILINEAR)
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=0)
    torch.testing.assert_close(_resample(x, elastic_grid(torch.zeros(3, 28, 28, 2))), x, atol=1e-5, rtol=0)


def test_separable_blur_matches_torchvision_gaussian_blur() -> None:
    d = torch.rand(4, 2, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    torch.testing.assert_close(gaussian_blur(d, 3.0), TF.gaussian_blur(d, [25, 25], [3.0, 3.0]), atol=1e-5, rtol=0)


def test_blur_with_one_std_per_image_matches_torchvision_image_by_image() -> None:
    x = _images(b=5, c=2)
    sig = torch.tensor([0.3, 0.8, 1.2, 1.5, 0.0])
    got = gaussian_blur(x, sig, window=13)
    for i in range(4):
        torch.testing.assert_close(got[i], TF.gaussian_blur(x[i], [13, 13], [float(sig[i])] * 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(got[4], x[4], atol=1e-6, rtol=0)  # a std of 0 leaves the image as it is


def _high_freq_energy(x: torch.Tensor) -> float:
    f = torch.fft.fft2(x).abs() ** 2
    return float(f[..., 7:22, 7:22].sum() / f.sum())


@pytest.mark.parametrize("kind", ["affine", "affine+elastic", "blur", "affine+blur"])
def test_augment_batch_matches_the_per_image_torchvision_path(kind: str) -> None:
    x = _images(b=16)
    got = augment_batch(x, kind, torch.Generator().manual_seed(5))
    want = augment._per_image_reference(x, kind, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (got - x).abs().max() > 0.1  # it did distort


def test_elastic_step_distorts_beyond_the_affine_map_with_the_documented_strength() -> None:
    """The same seed draws the same affine map first, so affine+elastic minus affine is the elastic step alone."""
    assert augment.ELASTIC == {"alpha": 8.0, "sigma": 3.0}  # torchvision's ElasticTransform at alpha 8 px, sigma 3 px
    x = _images(b=16)
    affine = augment_batch(x, "affine", torch.Generator().manual_seed(5))
    both = augment_batch(x, "affine+elastic", torch.Generator().manual_seed(5))
    diff = both - affine
    assert diff.abs().max() > 0.1
    assert diff.norm() / affine.norm() > 0.1  # a visible distortion, not float noise
    # uniform noise blurred by sigma = 3 px, times alpha = 8 px: about 0.2 px on average, about a pixel at most
    disp = augment._displacement(16, 28, 28, torch.Generator().manual_seed(9), torch.device("cpu"), torch.float32)
    px = disp * torch.tensor([28 / 2, 28 / 2])  # normalised units to pixels (measured: mean 0.21, max 1.10)
    assert 0.15 < float(px.abs().mean()) < 0.3 and 0.5 < float(px.abs().max()) < 2.0


@pytest.mark.parametrize("kind", ["affine", "affine+elastic", "blur", "affine+blur"])
def test_augment_batch_is_seeded_clamped_and_draws_what_it_always_drew(kind: str) -> None:
    x = _images(b=8, c=3)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = augment_batch(x, kind, g1), augment_batch(x, kind, g2)
    assert a.shape == x.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, augment_batch(x, kind, torch.Generator().manual_seed(8)))
    # the generator advanced by exactly the draws of the per-image path: batch order downstream is unchanged
    ref = torch.Generator().manual_seed(7)
    if kind.startswith("affine"):
        torch.rand(8, 6, generator=ref)
    if kind == "affine+elastic":
        torch.rand(8, 2, 28, 28, generator=ref)
    if kind.endswith("blur"):
        torch.rand(8, generator=ref, dtype=torch.float64)
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=ref))


def test_blur_removes_fine_detail_and_keeps_the_glyph_in_place() -> None:
    x = _images(b=16)
    y = augment_batch(x, "blur", torch.Generator().manual_seed(3))
    assert _high_freq_energy(y) < 0.5 * _high_freq_energy(x)
    assert float((y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().max()) < 0.02  # same ink, not moved


def test_augment_batch_none_unknown_and_integer_images() -> None:
    x = _images(b=2)
    assert augment_batch(x, "none", torch.Generator()) is x
    with pytest.raises(ValueError, match="choose one of none, affine, affine\\+elastic"):
        augment_batch(x, "rotate", torch.Generator())
    with pytest.raises(ValueError, match="Divide uint8 pixels by 255"):
        augment_batch((x * 255).to(torch.uint8), "affine", torch.Generator())


def test_source_recipe_names_the_same_augmentations() -> None:
    from dwp_hub.training import source

    assert source.AUGMENTATIONS is augment.AUGMENTATIONS


def test_affine_draws_cover_the_documented_ranges() -> None:
    """Rotation within ±10°, whole-pixel shifts within 10% of the side, scale 0.9-1.1, shear within ±5° along x
    only: checked on the draws themselves (the batched and per-image paths share this draw, so comparing them
    cannot)."""
    p = augment._draw(20_000, 28, 24, torch.Generator().manual_seed(0))
    angle, shift, scale, shear = p["angle"], p["translate"], p["scale"], p["shear"]
    assert angle.abs().max() <= 10 and angle.abs().max() > 9.9 and angle.mean().abs() < 0.2
    assert torch.equal(shift, shift.round())
    assert shift[:, 0].abs().max() == round(0.1 * 24) and shift[:, 1].abs().max() == round(0.1 * 28)  # x then y
    assert scale.min() >= 0.9 and scale.max() <= 1.1 and scale.min() < 0.901 and scale.max() > 1.099
    assert shear[:, 0].abs().max() <= 5 and shear[:, 0].abs().max() > 4.95
    assert torch.equal(shear[:, 1], torch.zeros_like(shear[:, 1]))
