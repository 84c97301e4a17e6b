"""Data augmentation of source-network training batches, one resampling per transform for the whole batch.

``"affine"`` draws a small random affine map per image (rotation, translation, scale, shear: the ranges of
:data:`AFFINE_RANGES`) and ``"affine+elastic"`` follows it with an elastic distortion (:data:`ELASTIC`).
``"blur"`` blurs each image by a Gaussian of random width (:data:`BLUR`) and ``"affine+blur"`` blurs after the affine
map: a net that sees blurred glyphs gets little data gradient on its kernels' finest frequencies, so the L2 term
decays them (measured: a smoother first layer, not a better prior; docs/results/source-study-probes/session10). The maps
are torchvision's (``transforms.v2.functional.affine`` / ``elastic`` with bilinear interpolation and zero fill: the
same inverse matrix about the image centre, the same sampling grid), applied to the batch at once with
``torch.nn.functional.grid_sample`` instead of image by image, so a batch costs two batched calls wherever it
lives (CPU or GPU). Every random number is drawn from the caller's CPU generator, in the same order as before the
transforms were batched, so a seed gives the same distortions on any device; the images differ from torchvision's
per-image results only by float rounding (tested in ``tests/test_augment.py``; ``tools/bench_source.py`` measures
the speed-up).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["AFFINE_RANGES", "AUGMENTATIONS", "BLUR", "ELASTIC", "affine_grid", "augment_batch", "elastic_grid",
           "gaussian_blur"]

#: Data augmentations a source recipe may name.
AUGMENTATIONS = ("none", "affine", "affine+elastic", "blur", "affine+blur")
#: Ranges of the random affine map: rotation (degrees), translation (fraction of the side), scale, shear (degrees).
AFFINE_RANGES = {"degrees": 10.0, "translate": 0.1, "scale": (0.9, 1.1), "shear": 5.0}
#: Elastic distortion: displacement strength alpha (pixels) and smoothness sigma (pixels).
ELASTIC = {"alpha": 8.0, "sigma": 3.0}
#: Random blur: the Gaussian's std (pixels) is drawn uniformly from this range, one per image.
BLUR = {"sigma": (0.0, 1.5)}


def _centred_pixels(h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Pixel centres ``[h*w, 3]`` as (x, y, 1), measured from the image centre in pixels."""
    xs = torch.arange(w, dtype=dtype, device=device) - (w - 1) / 2
    ys = torch.arange(h, dtype=dtype, device=device) - (h - 1) / 2
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy, torch.ones_like(xx)], dim=-1).reshape(-1, 3)


def affine_grid(angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor, shear: torch.Tensor,
                size: tuple[int, int], dtype: torch.dtype = torch.float32,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Sampling grids ``[B, h, w, 2]`` (``grid_sample`` convention, ``align_corners=False``) of ``B`` affine maps.

    ``angle`` (degrees, clockwise on screen), ``translate`` ``[B, 2]`` (pixels, x then y), ``scale`` and ``shear``
    ``[B, 2]`` (degrees, along x then y) describe each forward map about the image centre, as in torchvision's
    ``affine``; the grid holds, for every output pixel, where to read the input (the map's inverse).
    """
    h, w = size
    rot = torch.deg2rad(angle.double())
    sx, sy = torch.deg2rad(shear.double()).unbind(-1)
    tx, ty = translate.double().unbind(-1)
    s = scale.double()
    # forward linear part (rotation with shear; determinant 1) before scaling
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    # inverse: undo the translation, then the linear part (its inverse is the adjugate over the scale)
    inv = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / s.view(-1, 1, 1)
    offset = -(inv @ torch.stack([tx, ty], -1).unsqueeze(-1))
    theta = torch.cat([inv, offset], dim=-1).to(dtype=dtype, device=device)  # [B, 2, 3] in pixels
    src = _centred_pixels(h, w, dtype, theta.device) @ theta.transpose(1, 2)  # [B, h*w, 2]
    src = src / torch.tensor([w / 2, h / 2], dtype=dtype, device=theta.device)
    return src.view(-1, h, w, 2)


def elastic_grid(displacement: torch.Tensor) -> torch.Tensor:
    """Sampling grids ``[B, h, w, 2]``: the identity plus ``displacement`` ``[B, h, w, 2]`` (normalised units)."""
    _, h, w, _ = displacement.shape
    dt, dev = displacement.dtype, displacement.device
    xs = (2 * torch.arange(w, dtype=dt, device=dev) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=dt, device=dev) + 1) / h - 1
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1).unsqueeze(0) + displacement


def gaussian_blur(x: torch.Tensor, sigma: float | torch.Tensor, window: int | None = None) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` blurred by a Gaussian of std ``sigma`` pixels over a window of ``int(8 sigma + 1) | 1``
    pixels with reflected borders (torchvision's ``gaussian_blur`` for that window), as two 1-D passes.

    ``sigma`` may also be a tensor ``[B]``, one std per image, all over one ``window`` (odd; by default the largest
    std's); a std of 0 leaves its image as it is."""
    b, c = x.shape[:2]
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1)  # [1 or B, 1]
    k = window if window is not None else int(8 * float(s.max()) + 1) | 1
    t = torch.arange(k, dtype=x.dtype, device=x.device) - (k - 1) / 2
    g = torch.exp(-0.5 * (t / s.clamp_min(1e-6)) ** 2)
    g = (g / g.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [c or B*c, k]
    # one filter per image and channel: the batch folded into the channels
    y = x.reshape(1, b * c, *x.shape[2:]) if g.shape[0] != c else x
    n = y.shape[1]
    y = F.pad(y, [k // 2] * 4, mode="reflect")
    y = F.conv2d(y, g.view(n, 1, 1, k), groups=n)
    return F.conv2d(y, g.view(n, 1, k, 1), groups=n).reshape(x.shape)


def _resample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def _draw(b: int, h: int, w: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The affine parameters of ``b`` images, drawn from ``gen`` (6 uniforms an image, as before batching)."""
    r = AFFINE_RANGES
    u = torch.rand(b, 6, generator=gen).double() * 2 - 1  # uniform in [-1, 1]
    lo, hi = r["scale"]
    # translations are whole pixels, rounded half to even like Python's round()
    translate = torch.round(u[:, 1:3] * r["translate"] * torch.tensor([w, h], dtype=u.dtype))
    return {"angle": u[:, 0] * r["degrees"], "translate": translate,
            "scale": lo + (u[:, 3] + 1) / 2 * (hi - lo),
            "shear": torch.stack([u[:, 4] * r["shear"], torch.zeros(b, dtype=u.dtype)], -1)}


def _displacement(b: int, h: int, w: int, gen: torch.Generator, device: torch.device,
                  dtype: torch.dtype) -> torch.Tensor:
    """The elastic displacement fields ``[b, h, w, 2]`` (normalised units) of torchvision's ElasticTransform."""
    disp = (torch.rand(b, 2, h, w, generator=gen) * 2 - 1).to(device=device, dtype=dtype)
    disp = gaussian_blur(disp, ELASTIC["sigma"]) * ELASTIC["alpha"]
    disp = disp / torch.tensor([w, h], dtype=dtype, device=device).view(1, 2, 1, 1)
    return disp.permute(0, 2, 3, 1)


def augment_batch(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """A randomly distorted copy of the image batch ``x`` ``[B, C, H, W]`` (any device), one draw per image from
    ``gen`` (a CPU generator), clamped to [0, 1]. ``kind="none"`` returns ``x`` itself."""
    if kind == "none":
        return x
    if kind not in AUGMENTATIONS:
        raise ValueError(f"Unknown augment {kind!r}; choose one of {', '.join(AUGMENTATIONS)}.")
    if not x.is_floating_point():
        raise ValueError(f"augment_batch takes float images in [0, 1]; got {x.dtype}. Divide uint8 pixels by 255.")
    b, _, h, w = x.shape
    out = x
    if kind.startswith("affine"):
        out = _resample(x, affine_grid(**_draw(b, h, w, gen), size=(h, w), dtype=x.dtype, device=x.device))
    if kind == "affine+elastic":
        out = _resample(out, elastic_grid(_displacement(b, h, w, gen, out.device, x.dtype)))
    if kind.endswith("blur"):
        out = gaussian_blur(out, _blur_sigmas(b, gen).to(out.device), window=_blur_window())
    return out.clamp_(0.0, 1.0)


def _blur_sigmas(b: int, gen: torch.Generator) -> torch.Tensor:
    """The blur std of ``b`` images (pixels), uniform over :data:`BLUR`'s range, drawn from ``gen``."""
    lo, hi = BLUR["sigma"]
    return lo + torch.rand(b, generator=gen, dtype=torch.float64) * (hi - lo)


def _blur_window() -> int:
    return int(8 * BLUR["sigma"][1] + 1) | 1


def _per_image_reference(x: torch.Tensor, kind: str, gen: torch.Generator) -> torch.Tensor:
    """:func:`augment_batch` image by image through torchvision's own ``affine`` / ``elastic`` (the definition the
    batched path is tested against, and the baseline of ``tools/bench_source.py``)."""
    from torchvision.transforms.v2 import functional as TF

    if kind == "none":
        return x
    b, _, h, w = x.shape
    out = x.clone()
    if kind.startswith("affine"):
        p = _draw(b, h, w, gen)
        for i in range(b):
            out[i] = TF.affine(x[i], angle=float(p["angle"][i]), translate=[int(v) for v in p["translate"][i]],
                               scale=float(p["scale"][i]), shear=[float(v) for v in p["shear"][i]],
                               interpolation=TF.InterpolationMode.BILINEAR)
    if kind == "affine+elastic":
        disp = torch.rand(b, 2, h, w, generator=gen) * 2 - 1
        k = int(8 * ELASTIC["sigma"] + 1) | 1
        disp = TF.gaussian_blur(disp, [k, k], [ELASTIC["sigma"]] * 2) * ELASTIC["alpha"]
        disp = (disp / torch.tensor([w, h]).view(1, 2, 1, 1)).permute(0, 2, 3, 1)
        for i in range(b):
            out[i] = TF.elastic(out[i], disp[i : i + 1], interpolation=TF.InterpolationMode.BILINEAR)
    if kind.endswith("blur"):
        k = _blur_window()
        for i, s in enumerate(_blur_sigmas(b, gen).tolist()):
            if s > 0:
                out[i] = TF.gaussian_blur(out[i], [k, k], [s, s])
    return out.clamp_(0.0, 1.0)
