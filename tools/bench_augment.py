"""Benchmark: batched source-training augmentation against torchvision's per-image maps.

``dwp_hub.training.augment.augment_batch`` applies the recipe's random affine map (and elastic distortion) to the
whole batch with one ``grid_sample`` per transform; before, every image went through torchvision's ``affine`` /
``elastic`` on its own (kept as ``augment._per_image_reference``, the definition the batched path is tested
against). Both are timed in the same process, interleaved, on the same batch of notMNIST-10k training images
(``DWP_HUB_DATA``; random glyph-like images when it is absent), with the same generator seed, beside one training
step of the source net (forward, backward and Adam at the same batch) so the table shows what share of a source
step augmentation costs. A CUDA row is added when a GPU is present.

Example::

    DWP_HUB_DATA=../shared/data python tools/bench_augment.py --threads 1 --out docs/results/bench_augment.md
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/bench_augment.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from tools._experiment import RUN, ExperimentConfig, command_line, machine_note, set_threads, setting


@dataclasses.dataclass(frozen=True)
class BenchAugmentConfig(ExperimentConfig):
    """Source-training augmentation: batched against per-image torchvision."""

    NAME = "bench_augment"

    batch: int = setting(256, "images per batch (the paper's source batch)")
    widths: str = setting("64,32", "fconv widths of the source net whose step is timed beside")
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


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _step_fn(widths: tuple[int, ...], x: torch.Tensor, y: torch.Tensor):
    from dwp_hub.model.nets import NetConfig, build_net

    net = build_net(NetConfig("fconv", widths)).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def main(argv: list[str] | None = None) -> int:
    args, _ = BenchAugmentConfig.from_args(argv, __doc__.split("\n\n")[0])
    assert isinstance(args, BenchAugmentConfig)
    set_threads(args.threads)
    from dwp_hub.training import augment

    x, y, what = _batch(args.batch)
    widths = tuple(int(w) for w in args.widths.split(","))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    lines = [
        "# Source-training augmentation: batched against per-image torchvision",
        "",
        f"Command: `{command_line('bench_augment', argv)}`",
        "",
        f"- Batch: {args.batch} {what}; source step: fconv{widths}, forward + backward + Adam at that batch.",
        f"- {machine_note()}; {args.repeats} interleaved repeats; median milliseconds a batch.",
        "",
        "| device | augment | per-image torchvision | batched | speed-up | source step | share of a step, before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    for dev in devices:
        xd, yd = x.to(dev), y.to(dev)
        sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
        step = _step_fn(widths, xd, yd)
        for kind in ("affine", "affine+elastic"):
            arms = {
                "per-image": lambda k=kind: augment._per_image_reference(xd, k, torch.Generator().manual_seed(0)),
                "batched": lambda k=kind: augment.augment_batch(xd, k, torch.Generator().manual_seed(0)),
                "step": step,
            }
            for fn in arms.values():  # warm-up
                fn()
            times: dict[str, list[float]] = {k: [] for k in arms}
            for _ in range(max(1, args.repeats)):
                for name, fn in arms.items():
                    sync()
                    times[name].append(_time(lambda f=fn: (f(), sync())))
            m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            before = m["per-image"] / (m["per-image"] + m["step"])
            after = m["batched"] / (m["batched"] + m["step"])
            lines.append(f"| {dev} | {kind} | {m['per-image']:.1f} | {m['batched']:.1f} | "
                         f"{m['per-image'] / m['batched']:.1f}x | {m['step']:.1f} | {before:.0%} -> {after:.0%} |")
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
