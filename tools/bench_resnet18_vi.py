"""A modern architecture, whole: torchvision resnet18 converted to a Bayesian net (every conv and the fc),
the deep weight prior cifar10-3x3 on its 3x3 convs and the standard normal elsewhere; one VI step on
CIFAR-shaped random data, timed against the deterministic step and against the standard-normal VI step of the
same net (every layer under the standard normal), interleaved in one run. Also the conversion's wall time (each call
loads the prior from the local registry once; median of ``--rounds`` calls after a first, warm-up one). Targets
(issue 13): conversion under 1 s, the deep-weight-prior step at most 2x the standard-normal step.

Usage::

    python tools/bench_resnet18_vi.py --threads 2 --batch 32 --rounds 5 --out docs/results/bench_resnet18_vi.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (the first is warm-up)")
    ap.add_argument("--steps", type=int, default=2, help="steps per configuration and round")
    ap.add_argument("--prior", default="cifar10-3x3")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import torchvision

    from dwp_hub.inference import kl_divergence, to_bayesian, to_bayesian_report

    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)
    n_train = 50_000
    torch.manual_seed(0)
    det = torchvision.models.resnet18(num_classes=10)
    convert_s = []
    for _ in range(max(2, args.rounds)):  # the first warms the file cache and imports; the rest are timed
        plain = torchvision.models.resnet18(num_classes=10)
        t0 = time.perf_counter()
        bayes = to_bayesian(plain, {3: args.prior}, default="standard-normal", linear=True)
        convert_s.append(time.perf_counter() - t0)
    convert = statistics.median(convert_s[1:])
    sn = to_bayesian(torchvision.models.resnet18(num_classes=10), "standard-normal", linear=True)
    report = to_bayesian_report(bayes)
    opt_d = torch.optim.Adam(det.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam([p for p in bayes.parameters() if p.requires_grad], lr=1e-3)
    opt_s = torch.optim.Adam([p for p in sn.parameters() if p.requires_grad], lr=1e-3)

    def step_det() -> None:
        loss = F.cross_entropy(det(x), y)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    def step_vi(model: torch.nn.Module = bayes, opt: torch.optim.Optimizer = opt_b) -> None:
        loss = n_train * F.cross_entropy(model(x), y) + kl_divergence(model)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step_sn() -> None:
        step_vi(sn, opt_s)

    times: dict[str, list[float]] = {"deterministic": [], "vi": [], "sn": []}
    for r in range(args.rounds):
        for name, fn in (("deterministic", step_det), ("vi", step_vi), ("sn", step_sn)):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            if r:
                times[name].append((time.perf_counter() - t0) / args.steps * 1000)
    det_ms, vi_ms, sn_ms = (statistics.median(times[k]) for k in ("deterministic", "vi", "sn"))
    n_conv = sum(1 for line in str(report).splitlines() if line.startswith("  +"))
    lines = [
        "# resnet18, whole, as a Bayesian net: conversion time, and one VI step against the deterministic and "
        "standard-normal steps",
        "",
        f"Command: `python tools/bench_resnet18_vi.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        (f"torchvision resnet18 (10 classes), batch {args.batch} of 3x32x32 random images, torch {torch.__version__}, "
         f"{torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}. {n_conv} layers converted "
         f"(every conv and the fc): {args.prior} (fast bound) on the 3x3 convs, the standard normal elsewhere. "
         "Wall time per step (median of interleaved rounds, the first discarded)."),
        "",
        "| step | ms | ratio to deterministic | ratio to standard-normal VI |",
        "|---|---|---|---|",
        f"| deterministic (Adam, cross-entropy) | {det_ms:.1f} | 1.00 | {det_ms / sn_ms:.2f} |",
        f"| VI, standard normal everywhere | {sn_ms:.1f} | {sn_ms / det_ms:.2f} | 1.00 |",
        f"| VI, {args.prior} on the 3x3 convs (N·CE + KL, local reparameterisation) | {vi_ms:.1f} | "
        f"{vi_ms / det_ms:.2f} | {vi_ms / sn_ms:.2f} |",
        "",
        f"Conversion (`to_bayesian`, every conv and the fc, one load of the prior included): {convert * 1000:.0f} ms "
        f"(median of {len(convert_s) - 1}).",
        "",
        "Targets (issue 13): conversion under 1 s: " + ("met" if convert < 1.0 else "MISSED")
        + f"; deep-weight-prior step at most 2x the standard-normal step: {vi_ms / sn_ms:.2f}x, "
        + ("met" if vi_ms / sn_ms <= 2.0 else "MISSED") + ".",
        "",
        "Conversion report:",
        "",
        "```",
        str(report),
        "```",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
