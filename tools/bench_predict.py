"""Issue 13's predict target: ``dwp_hub.inference.predict`` on 5,000 MNIST images with K = 10 passes against 10
deterministic forward passes of the same net, timed interleaved in one run, and the peak memory of ``predict`` at
two values of K (each in a fresh child process: the largest resident set while it runs, above the set before it).

The Bayesian net is the paper's fconv 32/128 under the shipped deep weight priors (``paper_net("dwp")``); the
deterministic baseline is the same architecture as a plain net, run under ``torch.no_grad`` in the same batches.
Images 5000-9999 of MNIST-10k when ``DWP_HUB_DATA`` is set, else random images of the same shape (said in the
output). Targets: predict under 2x the deterministic passes; peak memory independent of K (judged on the live
tensors, the fixed-threshold measure).

Usage::

    DWP_HUB_DATA=../shared/data python tools/bench_predict.py --threads 1 --out docs/results/bench_predict.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from dwp_hub import constants


def _images(n: int) -> tuple[torch.Tensor, str]:
    if constants.data_root_is_explicit():
        from dwp_hub.data import load_idx_dataset

        x, _ = load_idx_dataset("mnist")  # float32 [N, 1, 28, 28] in [0, 1]
        return torch.from_numpy(x[5000 : 5000 + n]), f"MNIST-10k images 5000-{5000 + n - 1}"
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), f"{n} random 28x28 images"


def _nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    from dwp_hub.paper import paper_net

    return paper_net("dwp", seed=0), paper_net("deterministic", seed=0).eval()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


#: The fixed mmap threshold of the live-tensor memory measure (bytes).
MMAP_THRESHOLD = 131072


def _child(samples: int, n: int, batch: int) -> None:
    """Print the peak resident memory above the start while ``predict`` runs with ``samples`` passes."""
    from dwp_hub.inference import predict

    x, _ = _images(n)
    bayes, _ = _nets()
    predict(bayes, x[:batch], samples=1, batch_size=batch)  # warm-up: allocator and kernels
    base, peak, done = _rss(), [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    t = threading.Thread(target=watch)
    t.start()
    predict(bayes, x, samples=samples, batch_size=batch, generator=torch.Generator().manual_seed(0))
    done.set()
    t.join()
    print(json.dumps({"samples": samples, "peak_above_start_mb": max(0, peak[0] - base) / 2**20}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=5000, help="images")
    ap.add_argument("--samples", type=int, default=10, help="K, the MC passes of predict")
    ap.add_argument("--memory-samples", default="10,50", help="the two K whose peak memory is compared")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the first is warm-up)")
    ap.add_argument("--no-local", action="store_true", help="skip the sampling='local' timing row")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        _child(args.child, args.n, args.batch_size)
        return 0
    from dwp_hub.inference import predict

    x, what = _images(args.n)
    bayes, det = _nets()

    def run_det() -> None:
        with torch.no_grad():
            for _ in range(args.samples):
                for i in range(0, len(x), args.batch_size):
                    det(x[i : i + args.batch_size]).softmax(-1)

    def run_predict(sampling: str) -> None:
        predict(bayes, x, samples=args.samples, batch_size=args.batch_size, generator=torch.Generator().manual_seed(0),
                sampling=sampling)

    runs = {"det": run_det, "predict": lambda: run_predict("weights")}
    if not args.no_local:
        runs["local"] = lambda: run_predict("local")
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            if r:
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    det_s, pred_s = med["det"], med["predict"]
    ks = [int(v) for v in args.memory_samples.split(",")]
    mem: dict[str, list[float]] = {"default": [], "fixed": []}
    for k in ks:
        for how in mem:
            env = os.environ.copy()
            if how == "fixed":
                env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
            cmd = [sys.executable, __file__, "--child", str(k), "--n", str(args.n), "--batch-size",
                   str(args.batch_size), "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
            mem[how].append(json.loads(res.stdout.strip().splitlines()[-1])["peak_above_start_mb"])
    ratio = pred_s / det_s
    mem_ratio = mem["fixed"][-1] / max(mem["fixed"][0], 1e-9)
    mem_ok = abs(mem_ratio - 1) <= 0.1
    command = f"python tools/bench_predict.py {' '.join(argv if argv is not None else sys.argv[1:])}"
    lines = [
        "# predict: K stochastic passes against K deterministic passes, and its memory against K",
        "",
        f"Command: `{command}`",
        "",
        (f"{what}, batches of {args.batch_size}; the paper's fconv 32/128 under the shipped deep weight priors "
         f"(`paper_net('dwp')`) against the same architecture as a plain net under `torch.no_grad`; torch "
         f"{torch.__version__}, {torch.get_num_threads()} thread(s), load average {os.getloadavg()[0]:.1f}. Wall time: "
         "median of interleaved rounds, the first discarded."),
        "",
        "| run | seconds | ratio |",
        "|---|---|---|",
        f"| {args.samples} deterministic forward passes | {det_s:.3f} | 1.00 |",
        f"| `predict(samples={args.samples})` (probabilities, entropy, expected entropy, mutual information; one "
        f"weight draw per layer and pass) | {pred_s:.3f} | {ratio:.2f} |",
        *([f"| `predict(samples={args.samples}, sampling='local')` (local reparameterisation: a mean and a variance "
           f"convolution per layer) | {med['local']:.3f} | {med['local'] / det_s:.2f} |"] if "local" in med else []),
        "",
        "| K | peak memory above the start while predict runs, MiB (glibc defaults) | the same with a fixed mmap "
        f"threshold of {MMAP_THRESHOLD // 1024} KiB (live tensors) |",
        "|---|---|---|",
        *[f"| {k} | {d:.1f} | {f:.1f} |" for k, d, f in zip(ks, mem["default"], mem["fixed"])],
        "",
        f"Targets (issue 13): predict under 2x the deterministic passes: {ratio:.2f}x, "
        + ("met" if ratio < 2 else "MISSED")
        + f"; peak memory independent of K (live tensors, K={ks[-1]} / K={ks[0]}): {mem_ratio:.2f}, "
        + ("met" if mem_ok else "MISSED") + " (within 10%). With glibc's defaults the resident peak also counts "
        "freed blocks the heap keeps (fragmentation): "
        + f"K={ks[-1]} / K={ks[0]} = {mem['default'][-1] / max(mem['default'][0], 1e-9):.2f}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
