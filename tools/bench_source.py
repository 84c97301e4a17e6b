"""Benchmark: the cost of a source-network training step with augmentation, batched against per image.

``dwp_hub.training.augment.augment_batch`` applies the recipe's random affine map (and elastic distortion) to the
whole batch with one ``grid_sample`` per transform; before, every image went through torchvision's ``affine`` /
``elastic`` on its own (kept as ``augment._per_image_reference``, the definition the batched path is tested
against). Both are timed beside one training step of the source net (forward, backward with the recipe's L2 term,
Adam), in the same process, interleaved, on one batch of notMNIST-10k training images (``DWP_HUB_DATA``; random
glyph-like images when it is absent), so the table shows what a whole augmented step costs before and now. A CUDA
block is added when a GPU is present. (A channels-last layout of the step was measured too and dropped: on real
images it was no faster, 0.8-1.1x, on this CPU.)

Example::

    DWP_HUB_DATA=../shared/data python tools/bench_source.py --threads 1 --out docs/results/bench_source.md
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/bench_source.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from tools._experiment import RUN, ExperimentConfig, command_line, machine_note, set_threads, setting


@dataclasses.dataclass(frozen=True)
class BenchSourceConfig(ExperimentConfig):
    """Source-net training step with augmentation: batched against per image."""

    NAME = "bench_source"

    batch: int = setting(256, "images per batch (the paper's source batch)")
    widths: str = setting("64,32", "fconv widths of the source net")
    repeats: int = setting(7, "interleaved repeats")
    threads: int = setting(0, "torch threads (0: torch's default)", role=RUN)
    out: Path | None = setting(None, "also write the result as markdown here", role=RUN)


def _batch(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    from dwp_hub.errors import DataNotFoundError

    try:
        from dwp_hub.data import source_split

        split = source_split("notmnist", 0)
        return (torch.from_numpy(split.x_train[:n]), torch.from_numpy(split.y_train[:n]).long(),
                "notMNIST-10k training images")
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        x = torch.zeros(n, 1, 28, 28)
        x[:, :, 6:22, 8:20] = torch.rand(n, 1, 16, 12, generator=g)
        return x, torch.randint(0, 10, (n,), generator=g), "random glyph-like images (DWP_HUB_DATA not set)"


def _step_fn(widths: tuple[int, ...], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One step of train_one's loop (cross-entropy + 1e-3 · L2 of the convs, Adam) on a fixed batch."""
    from dwp_hub.model.nets import NetConfig, build_net, xavier_init_

    net = xavier_init_(build_net(NetConfig("fconv", widths)), torch.Generator().manual_seed(0)).to(x.device)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        loss = nn.functional.cross_entropy(net(x), y) + 1e-3 * sum((p**2).sum() for m in convs for p in m.parameters())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _median_ms(arms: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    for fn in arms.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(max(1, repeats)):  # interleaved, so load changes hit every arm alike
        for name, fn in arms.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    args, _ = BenchSourceConfig.from_args(argv, __doc__.split("\n\n")[0])
    assert isinstance(args, BenchSourceConfig)
    set_threads(args.threads)
    from dwp_hub.training import augment

    x, y, what = _batch(args.batch)
    widths = tuple(int(w) for w in args.widths.split(","))
    lines = [
        "# Source-network training step with augmentation: batched against per image",
        "",
        f"Command: `{command_line('bench_source', argv)}`",
        "",
        f"- Batch: {args.batch} {what}; source net fconv{widths}; a step is forward, backward (cross-entropy + the "
        "recipe's L2 term) and Adam.",
        f"- {machine_note()}; {args.repeats} interleaved repeats; median milliseconds.",
    ]
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        xd, yd = x.to(dev), y.to(dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        arms: dict[str, Callable[[], object]] = {"step": _step_fn(widths, xd, yd)}
        for kind in ("affine", "affine+elastic"):
            arms[f"{kind}, per image"] = (
                lambda k=kind: augment._per_image_reference(xd, k, torch.Generator().manual_seed(0)))
            arms[f"{kind}, batched"] = lambda k=kind: augment.augment_batch(xd, k, torch.Generator().manual_seed(0))
        m = _median_ms(arms, args.repeats, sync)
        lines += ["", f"## {dev}", "", "| augment | per image (before) | batched (now) | speed-up | source step | "
                  "augmented step, before -> now | share of the step, before -> now |", "|---|---|---|---|---|---|---|"]
        for kind in ("affine", "affine+elastic"):
            b, n, st = m[f"{kind}, per image"], m[f"{kind}, batched"], m["step"]
            lines.append(f"| {kind} | {b:.1f} | {n:.1f} | {b / n:.1f}x | {st:.1f} | {st + b:.1f} -> {st + n:.1f} "
                         f"({(st + b) / (st + n):.2f}x) | {b / (st + b):.0%} -> {n / (st + n):.0%} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
