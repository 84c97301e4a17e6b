"""Probe (issue 11, session 10): does blurring the source images make the first-layer kernels smoother?

A net that only sees blurred glyphs gets no data gradient on its kernels' finest spatial frequencies, so the L2 term
decays them: its kernels should come out smoother at the same scale. Trains fconv(64, 32) source nets with the
shipped notmnist-7x7@1.2.0 optimiser (Adam 1e-2 with linear decay, batch 64, L2 1e-3, 15 epochs, seeds 0, 1) and
``augment="blur"`` (or ``"affine+blur"``) at a given blur range, and prints the statistics of their first-layer 7x7
kernels (tools/source_study.py's kernel_stats; the unblurred baseline is session 7's ``w64`` row of
``../session7/width.jsonl``: same recipe and seeds without augmentation).
Each blur range gets its own work folder (the recipe's cache key does not hold the range). From a frozen worktree:
    DWP_HUB_DATA=../shared/data python blur.py WORK_DIR NAME=AUGMENT:LO:HI:NETS ...
"""
import json
import sys
from pathlib import Path

from dwp_hub.model.nets import NetConfig
from dwp_hub.training import augment
from dwp_hub.training.source import SourceRecipe, source_dir, train_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "session7"))
from width import stats  # noqa: E402


def main() -> None:
    work = Path(sys.argv[1])
    for arg in sys.argv[2:]:
        name, spec = arg.split("=")
        kind, lo, hi, nets = spec.split(":")
        augment.BLUR["sigma"] = (float(lo), float(hi))
        r = SourceRecipe(dataset="notmnist", net=NetConfig("fconv", (64, 32)), n_nets=int(nets), seed=0, epochs=15,
                         lr=1e-2, batch_size=64, l2=1e-3, augment=kind)
        d = source_dir(r, work / name)
        paths = train_sources(r, d, workers=1, progress=False)
        print(json.dumps({"name": name, "augment": kind, "blur_sigma": [float(lo), float(hi)], "dir": d.name,
                          **stats(paths)}), flush=True)


if __name__ == "__main__":
    main()
