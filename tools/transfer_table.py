"""Measure how much shipped priors help (issue 11): the transfer benefit of each listed 7x7 / 5x5 prior, by
:func:`dwp_hub.training.transfer.evaluate_transfer` — the same function ``dwp-hub build`` runs for a recipe with a
``transfer:`` section — for versions published before builds measured it (their cards are immutable).

VI of the paper's MNIST net (fconv 32/128) with the prior on the layer of its kernel size and the standard normal
elsewhere, against the standard normal everywhere, on the same class-stratified subsets, paired over seeds. A
notMNIST prior is scored on MNIST-10k, an MNIST prior on notMNIST-10k; TEST protocol (images 5000-9999 of the
target file), N=50, seeds 0-4, 400 steps at batch 50. One JSON line per prior in ``--out`` (resumable: priors
already there are skipped); ``tools/priors_table.py`` renders them beside the cards' own measurements.

Usage::

    DWP_HUB_DATA=../shared/data python tools/transfer_table.py \\
        --priors notmnist-7x7@1.2.0,notmnist-5x5@1.1.0,mnist-7x7@1.1.0,mnist-5x5@1.1.0 \\
        --out docs/results/transfer/shipped.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import dwp_hub
    from dwp_hub.training.transfer import TARGETS, TransferSpec, evaluate_transfer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--priors", required=True, help="comma-separated NAME@VERSION specs (7x7 or 5x5 priors)")
    ap.add_argument("--out", type=Path, required=True, help="JSON-lines file (appended; resumable)")
    ap.add_argument("--seeds", default="0-4", help="data-split seeds: 0-4, 0,2,5 or 3")
    ap.add_argument("--n-train", type=int, default=50)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--protocol", default="test", choices=("test", "validation"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    from tools._experiment import parse_seeds

    seeds = parse_seeds(args.seeds)
    done = ({json.loads(line)["prior"] for line in args.out.read_text().splitlines() if line.strip()}
            if args.out.exists() else set())
    for spec in args.priors.split(","):
        if spec in done:
            continue
        prior = dwp_hub.load(spec)
        start = time.time()
        ts = TransferSpec(dataset=TARGETS[prior.card.source.domain], protocol=args.protocol, n_train=args.n_train,
                          seeds=seeds, steps=args.steps)
        result = evaluate_transfer(prior, prior.card.arch.kernel_size, ts, threads=args.threads,
                                   on_run=lambda arm, seed, acc, s=spec: print(s, arm, seed, acc, flush=True))
        row = {"prior": spec, "kernel_size": prior.card.arch.kernel_size, **result.to_dict(),
               "seconds": round(time.time() - start), "dwp_hub": dwp_hub.__version__}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(result.summary(), flush=True)
    return 0


if __name__ == "__main__":
    if not __package__:  # run as a file (python tools/transfer_table.py): register the tools package
        import _bootstrap  # noqa: F401
    raise SystemExit(main())
