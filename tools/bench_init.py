"""Benchmark: initialising torchvision ResNet-18 from the 3x3 prior against its default initialisation.

Both are timed in the same process, interleaved, on the same model:

* default: ``reset_parameters()`` on every module that has one (what each layer's constructor does:
  Kaiming-uniform convs and linear layer, BatchNorm to ones/zeros);
* torchvision default: the above plus the model's own init pass, i.e. everything ``resnet18()``
  runs to initialise (``ResNet.__init__`` re-draws every conv with ``kaiming_normal_(mode="fan_out")``
  and sets BatchNorm/GroupNorm to ones/zeros); for other models the same as ``default``;
* dwp: ``dwp_hub.init_model(model, prior)`` (every dense 3x3 conv, one kernel per ``[out, in]``
  slice, decoder means of z ~ N(0, I)), with ``scale="prior"`` (the paper's) and ``scale="fan_in"``.

Target (issue 6): dwp costs at most 3x the default initialisation. The prior is ``cifar10-3x3``
when the registry has it; otherwise (or with ``--random-prior``) an untrained VAE with the
shipped 3x3 architecture (``cifar10-3x3@1.2.0``: ``ArchConfig("mlp", 3, 4, 32, "relu")``), which costs
exactly the same to sample.

Example::

    nice -n 10 .venv/bin/python tools/bench_init.py --repeats 7 --out docs/results/bench_init.md
"""

# ruff: noqa: RUF009 - config fields are tools._experiment.setting(...), a dataclasses.field
from __future__ import annotations

if not __package__:  # run as a file (python tools/bench_init.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from tools._experiment import RUN, ExperimentConfig, command_line, machine_note, random_prior, set_threads, setting

TARGET = 3.0


@dataclasses.dataclass(frozen=True)
class BenchInitConfig(ExperimentConfig):
    """Initialisation cost of a torchvision model: the 3x3 prior against the default initialisation."""

    NAME = "bench_init"

    model: str = setting("resnet18", "a torchvision.models builder name")
    prior: str = setting("cifar10-3x3", "the 3x3 prior")
    random_prior: bool = setting(False, "untrained prior with the shipped 3x3 architecture")
    repeats: int = setting(7, "interleaved repeats")
    threads: int = setting(0, "torch threads (0: torch's default)", role=RUN)
    out: Path | None = setting(None, "also write the result as markdown here", role=RUN)


def _default_init(model: nn.Module) -> None:
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()


def _torchvision_init(model: nn.Module) -> None:
    """What ``torchvision.models.resnet18()`` runs to initialise: the layers' own resets, then
    ``ResNet.__init__``'s loop (Kaiming-normal fan-out convs, norm layers to ones/zeros)."""
    import torchvision

    _default_init(model)
    if isinstance(model, torchvision.models.ResNet):
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    args, _ = BenchInitConfig.from_args(argv, __doc__.split("\n\n")[0])
    assert isinstance(args, BenchInitConfig)
    set_threads(args.threads)
    import torchvision

    import dwp_hub
    from dwp_hub.errors import PriorNotFoundError

    note = ""
    if args.random_prior:
        prior = random_prior(3)
        note = f"untrained stand-in with the shipped 3x3 architecture {prior.card.arch} (--random-prior)"
    else:
        try:
            prior = dwp_hub.load(args.prior)
            note = f"{prior.card.spec} from {prior.source}"
        except PriorNotFoundError:
            prior = random_prior(3)
            note = (f"{args.prior} is not in any registry yet, so an untrained stand-in with the shipped 3x3 "
                    f"architecture {prior.card.arch} (same sampling cost)")
    model = getattr(torchvision.models, args.model)(weights=None)
    n_params = sum(p.numel() for p in model.parameters())
    report = dwp_hub.init_model(model, prior, generator=torch.Generator().manual_seed(0))
    n_kernels = sum(li.shape[0] * li.shape[1] for li in report.initialized)
    g = torch.Generator().manual_seed(1)
    arms = {
        "default (reset_parameters)": lambda: _default_init(model),
        f"torchvision default ({args.model}() init)": lambda: _torchvision_init(model),
        "dwp, scale='prior'": lambda: dwp_hub.init_model(model, prior, generator=g),
        "dwp, scale='fan_in'": lambda: dwp_hub.init_model(model, prior, generator=g, scale="fan_in"),
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(max(1, args.repeats)):  # interleaved, so load changes hit every arm alike
        for name, fn in arms.items():
            times[name].append(_time(fn))
    base = statistics.median(times["default (reset_parameters)"])
    base_min = min(times["default (reset_parameters)"])
    lines = [
        f"# Initialisation cost: torchvision {args.model}",
        "",
        f"Command: `{command_line('bench_init', argv)}`",
        "",
        (f"- Model: {args.model}, {n_params:,} parameters; the prior initialises {len(report)} conv layers "
        f"({n_kernels:,} 3x3 kernels), skips {len(report.skipped)} "
        f"({', '.join(sorted({r for _, r in report.skipped}))})."),
        f"- Prior: {note}.",
        f"- {machine_note()}; {args.repeats} interleaved repeats; times in seconds.",
        "",
        "| arm | median | min | median ratio to default | min ratio |",
        "|---|---|---|---|---|",
    ]
    for name, ts in times.items():
        lines.append(f"| {name} | {statistics.median(ts):.3f} | {min(ts):.3f} | "
                     f"{statistics.median(ts) / base:.1f}x | {min(ts) / base_min:.1f}x |")
    dwp = statistics.median(times["dwp, scale='prior'"])
    tv = statistics.median(times[f"torchvision default ({args.model}() init)"])
    ratio, ratio_tv = dwp / base, dwp / tv
    lines += ["", (f"Target: dwp at most {TARGET:.0f}x the default initialisation. Measured (median, "
                   f"scale='prior'): **{ratio:.1f}x** the layers' `reset_parameters()` alone "
                   f"({'met' if ratio <= TARGET else 'NOT met'}), **{ratio_tv:.1f}x** all of "
                   f"{args.model}()'s own initialisation ({'met' if ratio_tv <= TARGET else 'NOT met'}).")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
