"""Speed of one VI training step of the paper's 32/128 MNIST net, by prior, in one run.

Measures milliseconds per training step (forward, KL, backward, Adam; CPU time with one thread,
wall time otherwise) for the standard normal,
log-uniform (the paper's variational-dropout family), sparse log-uniform (the additive family),
deep weight prior with the full bound (all kernels every step, the paper's estimator) and with the
fast bound (m kernels per layer and step), interleaved round by round with a 1024x1024 fp32
``torch.mm`` so that machine load affects every configuration alike, and prints medians as ratios
to the standard-normal step, and the standard-normal step's FLOP rate (FlopCounterMode) as a
fraction of the in-run GEMM rate. The targets of issue 12 are checked on these ratios.

Where bfloat16 is native (:func:`dwp_hub.inference.vi.bf16_supported`: AVX512-BF16 / AMX, or a CUDA GPU) and
``--no-bf16`` is not given, the standard-normal and fast-DWP steps are also timed under
``VIRecipe(precision="bf16")`` (the forward pass under bf16 autocast, as :func:`~dwp_hub.inference.fit_vi` runs
it; KL terms and the update fp32), interleaved with the others and with a 1024x1024 bf16 ``torch.mm``: the bf16
standard-normal step's FLOP rate as a fraction of that in-run bf16 GEMM rate, and each bf16 step's time as a
ratio to its fp32 step. Accuracy of bf16 training is validated separately (``tools/bf16_check.py``).

Peak memory of each configuration is measured in a fresh subprocess:
the resident-set high-water mark during a few steps (reset after the build, Linux), and its
increase over the resident set before the steps (the step's transient memory).

Priors: ``notmnist-7x7`` / ``notmnist-5x5`` when ``dwp-hub list`` has them, otherwise randomly
initialised VAEs of the same paper architectures (timing does not depend on trained weights); the
output says which.

Optionally (``--accuracy-epochs E``) also trains the fast and the full bound on the MNIST-10k
protocol (``--accuracy-n`` examples, seeds ``--accuracy-seeds``) for E epochs and reports test
accuracy (MC ensemble of 10) side by side.

Usage::

    DWP_HUB_DATA=../shared/data nice -n 10 python tools/bench_vi.py --threads 2
"""

from __future__ import annotations

if not __package__:  # run as a file (python tools/bench_vi.py): register the tools package
    import _bootstrap  # noqa: F401

import dataclasses
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

import torch

from tools._experiment import RUN, ExperimentConfig, parse_ints, parse_seeds, random_priors, setting

CONFIGS = ("standard-normal", "log-uniform", "sparse-log-uniform", "dwp-full", "dwp-fast")
#: Configurations also timed under bf16 autocast (named ``<config>-bf16``) where bfloat16 is native.
BF16_CONFIGS = ("standard-normal", "dwp-fast")
BF16 = "-bf16"
#: Targets (issue 12), checked on the ratios of one run.
TARGETS = {"sn_gemm_fraction": 0.60, "dwp-fast": 1.3, "log-uniform": 1.1, "sparse-log-uniform": 1.1}
#: Side of the square fp32 matrix product whose rate is the in-run reference.
GEMM_N = 1024


def _gemm_fn(dtype: torch.dtype = torch.float32) -> Any:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=g).to(dtype)
    b = torch.randn(GEMM_N, GEMM_N, generator=g).to(dtype)

    def gemm() -> None:
        torch.mm(a, b)

    return gemm


def _step_flops(step: Any) -> int:
    """FLOPs of one training step (forward and backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return int(counter.get_total_flops())


def _priors(kind: str) -> tuple[dict[int, Any], str]:
    if kind in ("auto", "hub"):
        try:
            import dwp_hub

            names = {p.name for p in dwp_hub.list_priors()}
            if {"notmnist-7x7", "notmnist-5x5"} <= names:
                return ({7: dwp_hub.load("notmnist-7x7"), 5: dwp_hub.load("notmnist-5x5")},
                        "hub priors notmnist-7x7 + notmnist-5x5")
        except Exception as err:  # noqa: BLE001 - fall back to random VAEs, and say so
            print(f"(could not load hub priors: {err})")
        if kind == "hub":
            raise SystemExit("notmnist-7x7 / notmnist-5x5 are not installed.")
    return random_priors((7, 5)), "randomly initialised VAEs of the shipped architectures (conv7 z2 h32, conv5 z4 h64)"


def _batch(batch: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        from dwp_hub.data import mnist10k_protocol

        s = mnist10k_protocol(max(10, -(-batch // 10) * 10), 0)
        return torch.from_numpy(s.x_train[:batch]), torch.from_numpy(s.y_train[:batch]), "MNIST-10k images"
    except Exception:  # noqa: BLE001 - timing does not depend on the pixels
        g = torch.Generator().manual_seed(0)
        return torch.rand(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g), "random images"


def _split_name(name: str, m: int | None) -> tuple[str, int | None, str]:
    """A row's name (``dwp-fast-m16``, ``standard-normal-bf16`` ...) as (configuration, m, precision)."""
    precision = "bf16" if name.endswith(BF16) else "fp32"
    name = name.removesuffix(BF16)
    if name.startswith("dwp-fast-m"):
        return "dwp-fast", int(name[len("dwp-fast-m"):]), precision
    return name, m, precision


def _step_fn(config: str, priors: dict[int, Any], x: torch.Tensor, y: torch.Tensor, m: int | None,
             precision: str = "fp32") -> Any:
    """One training step of ``config``; with ``precision="bf16"`` the forward pass runs under the autocast
    context that :func:`~dwp_hub.inference.fit_vi` uses for ``VIRecipe(precision="bf16")``."""
    from dwp_hub.inference import VIRecipe, kl_divergence, neg_elbo
    from dwp_hub.inference.vi import _autocast  # fit_vi's own context, so the bench times what training runs
    from dwp_hub.paper import paper_net

    if config.startswith("dwp"):
        model = paper_net("dwp", dwp_priors=priors, bound="full" if config == "dwp-full" else "fast",
                          kernels_per_step=m)
    else:
        model = paper_net(config)  # "log-uniform": the paper's variational-dropout family
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    n = len(x)
    if precision == "fp32":
        def step() -> None:
            loss = neg_elbo(model(x), y, n, kl_divergence(model))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step
    recipe = VIRecipe(precision=precision)
    autocast = _autocast(recipe.precision, x.device)  # checked once, as fit_vi does before its loop

    def step_autocast() -> None:
        with autocast():
            out = model(x)
        loss = neg_elbo(out.float(), y, n, kl_divergence(model))  # data term, KL and update in fp32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step_autocast


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _memory_worker(args: tuple[str, str, int, int | None, int, int]) -> dict[str, float]:
    """Peak resident memory of a few training steps in a fresh process (Linux: VmHWM is reset
    through /proc/self/clear_refs after the build, so the peak is the steps' own)."""
    name, prior_kind, batch, m, threads, steps = args
    torch.set_num_threads(threads)
    priors, _ = _priors(prior_kind)
    x, y, _ = _batch(batch)
    config, m, precision = _split_name(name, m)
    step = _step_fn(config, priors, x, y, m, precision)
    step()  # warm-up: Adam state and allocator caches exist from here on
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    before = _status_mb("VmRSS")
    for _ in range(steps):
        step()
    peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": peak, "step_peak_increase_mb": peak - before if reset else float("nan")}


def _accuracy(priors: dict[int, Any], n: int, seeds: list[int], epochs: int, m: int | None) -> list[dict[str, Any]]:
    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import VIRecipe, fit_vi
    from dwp_hub.paper import paper_net

    rows = []
    for seed in seeds:
        split = mnist10k_protocol(n, seed)
        for bound in ("fast", "full"):
            model = paper_net("dwp", dwp_priors=priors, seed=seed, bound=bound, kernels_per_step=m)
            r = fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=epochs, seed=seed),
                       x_eval=split.x_eval, y_eval=split.y_eval, progress=False)
            rows.append({"seed": seed, "bound": bound, "acc_ensemble": r.metrics["acc_ensemble"],
                         "acc_mean": r.metrics["acc_mean"], "final_loss": r.final["loss"],
                         "ms_per_step": round(r.ms_per_step, 1)})
            print(f"  accuracy  N={n} seed {seed} {bound:<4}: {r.metrics['acc_ensemble']:.4f} (ensemble) "
                  f"{r.metrics['acc_mean']:.4f} (mean), final loss {r.final['loss']:.1f}, "
                  f"{r.ms_per_step:.1f} ms/step", flush=True)
    return rows


def _ints_or_none(value: Any) -> tuple[int, ...]:
    """:func:`parse_ints`, or () for nothing (the default: no extra m values)."""
    if value is None or (isinstance(value, (str, tuple, list)) and not value):
        return ()
    return parse_ints(value)


@dataclasses.dataclass(frozen=True)
class BenchViConfig(ExperimentConfig):
    """Speed of one VI training step of the paper's 32/128 MNIST net, by prior, in one run."""

    NAME = "bench_vi"

    batch: int = setting(50, "batch size")
    rounds: int = setting(7, "interleaved rounds (the first is warm-up)")
    steps: int = setting(5, "steps per configuration and round (full bound: 1)")
    kernels_per_step: int | None = setting(None, "m of the fast bound (default 32)")
    also_m: tuple[int, ...] = setting((), "extra fast-bound m values to time, e.g. 16,128", parse=_ints_or_none)
    priors: str = setting("auto", "hub priors, random stand-ins, or hub when installed", choices=("auto", "hub", "random"))
    no_memory: bool = setting(False, "skip the peak-memory subprocesses")
    no_bf16: bool = setting(False, "skip the bf16 rows (timed only where bfloat16 is native)")
    accuracy_epochs: int = setting(0, "also compare accuracy of fast vs full bound")
    accuracy_n: int = setting(50, "training examples of the accuracy comparison")
    accuracy_seeds: tuple[int, ...] = setting((0,), "data-split seeds of the accuracy comparison: 0-4, 0,3 or 3",
                                              parse=parse_seeds)
    threads: int = setting(0, "torch threads (0: torch's default)", role=RUN)
    json: str = setting("", "write the results to this JSON file", role=RUN)


def main(argv: list[str] | None = None) -> int:
    from dwp_hub.inference.priors import DEFAULT_KERNELS_PER_STEP
    from dwp_hub.inference.vi import bf16_supported

    args, _ = BenchViConfig.from_args(argv, __doc__.split("\n\n")[0])
    assert isinstance(args, BenchViConfig)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    m = args.kernels_per_step or DEFAULT_KERNELS_PER_STEP
    priors, prior_desc = _priors(args.priors)
    x, y, data_desc = _batch(args.batch)
    configs: dict[str, Any] = {c: _step_fn(c, priors, x, y, m) for c in CONFIGS}
    sn_flops = _step_flops(configs["standard-normal"])
    configs["gemm-fp32"] = _gemm_fn()
    for extra in args.also_m:
        configs[f"dwp-fast-m{extra}"] = _step_fn("dwp-fast", priors, x, y, extra)
    bf16 = not args.no_bf16 and bf16_supported("cpu")
    bf16_flops = 0
    if bf16:
        for c in BF16_CONFIGS:
            configs[c + BF16] = _step_fn(c, priors, x, y, m, "bf16")
        bf16_flops = _step_flops(configs["standard-normal" + BF16])
        configs["gemm-bf16"] = _gemm_fn(torch.bfloat16)
    print(f"bench_vi: fconv 32/128, batch {args.batch} ({data_desc}), torch {torch.__version__}, "
          f"{threads} thread(s), {platform.processor() or platform.machine()}")
    print(f"priors: {prior_desc}; fast bound m = {m} kernels per layer and step")
    print("bf16 rows: " + ("the forward pass under bf16 autocast (VIRecipe(precision='bf16'))" if bf16 else
                           "skipped (--no-bf16)" if args.no_bf16 else "none, bfloat16 is not native on this CPU"))
    wall: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        for name, step in configs.items():
            n = 1 if name == "dwp-full" else args.steps
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                step()
            if r:  # round 0 is warm-up
                wall[name].append(1000 * (time.perf_counter() - t0) / n)
                cpu[name].append(1000 * (time.process_time() - c0) / n)
    # With one thread, CPU time is the step's cost even on a loaded machine (wall time then also
    # counts the time the process waited for a core); with more threads it includes spinning, so
    # wall time is the measure (meaningful on an otherwise idle machine).
    basis = "cpu" if threads == 1 else "wall"
    times = cpu if basis == "cpu" else wall
    base = statistics.median(times["standard-normal"])
    gemm_ms = statistics.median(times.pop("gemm-fp32"))
    configs.pop("gemm-fp32")
    gemm_bf16_ms = statistics.median(times.pop("gemm-bf16")) if bf16 else float("nan")
    configs.pop("gemm-bf16", None)
    gemm_rate = 2 * GEMM_N**3 / (gemm_ms / 1000)
    step_rate = sn_flops / (base / 1000)
    fraction = step_rate / gemm_rate
    load = list(os.getloadavg())  # at the end of the timed rounds; the report prints this same value
    results: dict[str, Any] = {"threads": threads, "batch": args.batch, "priors": prior_desc, "m": m,
                               "ratio_basis": basis, "load_average": load, "warmup_rounds": 1, "configs": {},
                               "sn_step_gflop": sn_flops / 1e9, "sn_step_gflops_per_s": step_rate / 1e9,
                               "gemm_fp32_gflops_per_s": gemm_rate / 1e9, "sn_gemm_fraction": fraction}
    print(f"standard-normal step: {sn_flops / 1e9:.2f} GFLOP (FlopCounterMode) in {base:.1f} ms = "
          f"{step_rate / 1e9:.1f} GFLOP/s; fp32 {GEMM_N}x{GEMM_N} torch.mm in the same run: {gemm_rate / 1e9:.1f} "
          f"GFLOP/s; fraction {fraction:.2f} (target >= {TARGETS['sn_gemm_fraction']:.2f}: "
          f"{'met' if fraction >= TARGETS['sn_gemm_fraction'] else 'MISSED'})")
    if bf16:
        bf16_ms = statistics.median(times["standard-normal" + BF16])
        bf16_gemm_rate = 2 * GEMM_N**3 / (gemm_bf16_ms / 1000)
        bf16_rate = bf16_flops / (bf16_ms / 1000)
        results["bf16"] = {
            "sn_step_gflop": bf16_flops / 1e9, "sn_step_gflops_per_s": bf16_rate / 1e9,
            "gemm_bf16_gflops_per_s": bf16_gemm_rate / 1e9, "sn_gemm_bf16_fraction": bf16_rate / bf16_gemm_rate,
            "bf16_over_fp32": {c: statistics.median(times[c + BF16]) / statistics.median(times[c])
                               for c in BF16_CONFIGS},
        }
        print(f"bf16 standard-normal step: {bf16_flops / 1e9:.2f} GFLOP in {bf16_ms:.1f} ms = {bf16_rate / 1e9:.1f} "
              f"GFLOP/s; bf16 {GEMM_N}x{GEMM_N} torch.mm in the same run: {bf16_gemm_rate / 1e9:.1f} GFLOP/s; "
              f"fraction {bf16_rate / bf16_gemm_rate:.2f}")
        print("bf16 / fp32 step time: " + ", ".join(f"{c} {r:.2f}x" for c, r in results["bf16"]["bf16_over_fp32"].items()))
    memory: dict[str, dict[str, float]] = {}
    if not args.no_memory:
        ctx = mp.get_context("spawn")
        with ctx.Pool(1, maxtasksperchild=1) as pool:
            for name in configs:
                memory[name] = pool.apply(_memory_worker, ((name, args.priors, args.batch, m, threads, 3),))
    print(f"\nratios use {basis} time; load average {load[0]:.1f} (end of timing) on {os.cpu_count()} cores")
    print(f"{'config':<20} {'cpu ms':>8} {'wall ms':>8} {'x SN':>6} {'x fp32':>6} {'peak MB':>9} {'step +MB':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        mem = memory.get(name, {})
        row = {"cpu_ms_median": statistics.median(cpu[name]), "wall_ms_median": statistics.median(wall[name]),
               "ratio": med / base, "rounds": len(ts), **mem}
        if name.endswith(BF16):  # its own fp32 step, timed in the same rounds
            row["ratio_to_fp32"] = med / statistics.median(times[name.removesuffix(BF16)])
        results["configs"][name] = row
        to_fp32 = f"{row['ratio_to_fp32']:6.2f}" if "ratio_to_fp32" in row else f"{'':>6}"
        print(f"{name:<20} {statistics.median(cpu[name]):8.1f} {statistics.median(wall[name]):8.1f} "
              f"{med / base:6.2f} {to_fp32} {mem.get('peak_rss_mb', float('nan')):9.0f} "
              f"{mem.get('step_peak_increase_mb', float('nan')):9.1f}")
    results["targets"] = {}
    for name, limit in TARGETS.items():
        if name in results["configs"]:
            ratio = results["configs"][name]["ratio"]
            results["targets"][name] = {"ratio": ratio, "limit": limit, "met": ratio <= limit}
            print(f"target: {name} <= {limit:.2f}x the standard-normal step: {ratio:.2f}x "
                  f"({'met' if ratio <= limit else 'MISSED'})")
    if args.accuracy_epochs:
        seeds = list(args.accuracy_seeds)
        print(f"\naccuracy, fast (m={m}) vs full bound, {args.accuracy_epochs} epochs:")
        results["accuracy"] = acc = _accuracy(priors, args.accuracy_n, seeds, args.accuracy_epochs, m)
        by = {b: [r["acc_ensemble"] for r in acc if r["bound"] == b] for b in ("fast", "full")}
        diffs = [f - g for f, g in zip(by["fast"], by["full"])]
        sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
        print(f"  mean accuracy fast {statistics.mean(by['fast']):.4f} vs full {statistics.mean(by['full']):.4f}: "
              f"fast - full = {statistics.mean(diffs):+.4f} (paired over {len(diffs)} seed(s), std {sd:.4f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
