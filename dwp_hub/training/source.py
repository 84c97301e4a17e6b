"""Train source networks on a source dataset (the first step of building a prior).

Recipe (paper / recipe file): Adam lr 1e-3 with linear decay to 0, batch 256, Xavier init,
loss = mean cross-entropy + ``l2`` · Σ(squared conv-layer parameters), inputs in [0, 1].

Optional data augmentation (not in the paper, whose nets saw 60k images): ``augment="affine"``
draws a small random affine map per image (rotation, translation, scale, shear) and
``"affine+elastic"`` adds an elastic distortion, both torchvision's maps applied to the whole batch at once;
``"blur"`` / ``"affine+blur"`` blur each image by a Gaussian of random width, which smooths the learned kernels
(:mod:`dwp_hub.training.augment`) with parameters drawn from the net's seeded generator (reproducible).

``device`` (``"cpu"``, ``"cuda"``, ...) says where the nets train. Every random draw (initialisation, batch
order, augmentation) comes from the net's CPU generator and batches move to the device (augmented there), so a net
trained on a GPU differs from the CPU's only by float rounding; the device is not part of the recipe (nor of the
folder that caches its nets, :func:`source_dir`).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dwp_hub._device import resolve_device
from dwp_hub.data import dataset_sha256, source_split
from dwp_hub.errors import SourceDivergedError, TrainingError
from dwp_hub.model.nets import NetConfig, build_net, input_shape, xavier_init_
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.augment import AUGMENTATIONS, augment_batch


@dataclass(frozen=True)
class SourceRecipe:
    """How to train one family of source networks."""

    dataset: str = "notmnist"
    net: NetConfig = field(default_factory=lambda: NetConfig("fconv", (256, 512)))
    n_nets: int = 10
    seed: int = 0
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 256
    l2: float = 1e-3
    split_seed: int = 0
    augment: str = "none"

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise TrainingError(f"Unknown augment {self.augment!r}; choose one of {', '.join(AUGMENTATIONS)}.")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["net"] = self.net.to_dict()
        if d["augment"] == "none":  # omitted at its default: recipes (and their cache keys) from before it stay the same
            del d["augment"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceRecipe:
        d = dict(d)
        net = NetConfig.from_dict(d.pop("net")) if "net" in d else NetConfig("fconv", (256, 512))
        return cls(net=net, **d)


def _linear_decay(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total))


def _accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    device = next(net.parameters()).device
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (net(x[i : i + batch].to(device)).argmax(1).cpu() == y[i : i + batch]).sum().item()
    net.train()
    return correct / len(x)


def _check_fits(recipe: SourceRecipe, image_shape: tuple[int, ...], max_label: int) -> None:
    """Fail early, with the fix, when the net does not match the dataset's images or classes."""
    expected = input_shape(recipe.net)
    if tuple(image_shape) != expected:
        raise TrainingError(
            f"Net {recipe.net.arch} takes inputs {expected}, but {recipe.dataset} images are "
            f"{tuple(image_shape)}. Use arch 'cifar' (in_channels 3) for CIFAR, 'fconv'/'fconv3' for 28x28."
        )
    if max_label >= recipe.net.num_classes:
        raise TrainingError(
            f"{recipe.dataset} has label {max_label}, but the net has num_classes "
            f"{recipe.net.num_classes}. Set net.num_classes (100 for cifar100)."
        )


def train_one(
    recipe: SourceRecipe,
    index: int,
    out_dir: str | Path,
    threads: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
    inspect: Callable[[int, nn.Module], None] | None = None,
    device: Any = None,
) -> Path:
    """Train source net number ``index`` (seed ``recipe.seed + index``) on ``device`` (default: the CPU);
    return its checkpoint (CPU tensors).

    ``inspect(epoch, net)``, if given, is called after every epoch (studies record kernel statistics
    along the run with it); it must not change the net.
    """
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    seed = recipe.seed + index
    split = source_split(recipe.dataset, recipe.split_seed)
    _check_fits(recipe, split.x_train.shape[1:], int(np.concatenate([split.y_train, split.y_eval]).max()))
    x_tr, y_tr = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    x_va, y_va = torch.from_numpy(split.x_eval), torch.from_numpy(split.y_eval)
    gen = torch.Generator().manual_seed(seed)
    net = xavier_init_(build_net(recipe.net), gen).to(dev)  # initialised on the CPU: the same weights anywhere
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    steps_per_epoch = -(-len(x_tr) // recipe.batch_size)
    sched = _linear_decay(opt, recipe.epochs * steps_per_epoch)
    start = time.perf_counter()
    val_acc = 0.0
    for epoch in range(recipe.epochs):
        perm = torch.randperm(len(x_tr), generator=gen)
        for i in range(0, len(x_tr), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            xb = augment_batch(x_tr[idx].to(dev), recipe.augment, gen)
            loss = nn.functional.cross_entropy(net(xb), y_tr[idx].to(dev))
            loss = loss + recipe.l2 * sum((p**2).sum() for m in convs for p in m.parameters())
            if not torch.isfinite(loss):
                raise SourceDivergedError(
                    f"Source net {index} (seed {seed}): loss became {loss.item()} in epoch {epoch}. "
                    "Lower the learning rate or the L2 weight.", index=index, epoch=epoch,
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        val_acc = _accuracy(net, x_va, y_va)
        if on_epoch is not None:
            on_epoch(epoch, val_acc)
        if inspect is not None:
            inspect(epoch, net)
    meta = {
        "recipe": recipe.to_dict(),
        "index": index,
        "seed": seed,
        "val_accuracy": val_acc,
        "train_seconds": round(time.perf_counter() - start, 2),
        "split": split.protocol,
        "dataset_sha256": dataset_sha256(recipe.dataset),
        "torch": torch.__version__,
    }
    path = Path(out_dir) / f"{recipe.dataset}-{recipe.net.arch}-{index:03d}.safetensors"
    save_checkpoint(path, net.state_dict(), meta)
    return path


def _worker(args: tuple[SourceRecipe, int, str, int, str | None]) -> tuple[str, float]:
    recipe, index, out_dir, threads, device = args
    accs: list[float] = []
    try:
        path = train_one(recipe, index, out_dir, threads, on_epoch=lambda e, a: accs.append(a), device=device)
    except SourceDivergedError as err:
        _record_diverged(Path(out_dir), err)
        return "", float("nan")
    return str(path), accs[-1]


#: File in a source folder listing the nets that diverged (index, epoch, message); they are not retried.
DIVERGED_FILE = "diverged.json"


def _record_diverged(out_dir: Path, err: SourceDivergedError) -> None:
    import json

    from dwp_hub._fs import atomic_path

    path = out_dir / DIVERGED_FILE
    found = json.loads(path.read_text()) if path.is_file() else []
    found = [d for d in found if d["index"] != err.index] + [{"index": err.index, "epoch": err.epoch,
                                                                "message": str(err)}]
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(sorted(found, key=lambda d: d["index"]), indent=1))


def diverged(out_dir: str | Path) -> list[dict[str, Any]]:
    """The nets of a source folder that diverged (``[]`` when none did)."""
    import json

    path = Path(out_dir) / DIVERGED_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def train_sources(
    recipe: SourceRecipe,
    out_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
    device: Any = None,
) -> list[Path]:
    """Train ``recipe.n_nets`` source networks, ``workers`` processes at a time, on ``device``
    (default: the CPU; workers share it).

    Each worker gets ``torch.get_num_threads() // workers`` threads. Already finished
    checkpoints in ``out_dir`` are kept (the run resumes where it stopped), whichever device
    trained them.
    """
    from dwp_hub._progress import progress_bar

    dev = resolve_device(device)  # a device this machine lacks: refused before any work

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = {d["index"] for d in diverged(out_dir)}
    todo = [
        i for i in range(recipe.n_nets)
        if not (out_dir / f"{recipe.dataset}-{recipe.net.arch}-{i:03d}.safetensors").exists() and i not in skip
    ]
    threads = max(1, torch.get_num_threads() // max(1, workers))
    with progress_bar(progress) as bar:
        if workers <= 1:
            task = bar.add_task(f"source nets ({recipe.dataset})", total=len(todo) * recipe.epochs)
            for i in todo:
                try:
                    train_one(recipe, i, out_dir, threads,
                              on_epoch=lambda e, a: bar.update(task, advance=1, acc=f"val acc {a:.3f}"), device=dev)
                except SourceDivergedError as err:  # stop that net, record it, go on with the others
                    _record_diverged(out_dir, err)
        else:
            task = bar.add_task(f"source nets ({recipe.dataset})", total=len(todo))
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = [pool.submit(_worker, (recipe, i, str(out_dir), threads, str(dev))) for i in todo]
                for fut in cf.as_completed(futures):
                    _, acc = fut.result()
                    bar.update(task, advance=1, acc=f"val acc {acc:.3f}")
    paths = sorted(out_dir.glob(f"{recipe.dataset}-{recipe.net.arch}-*.safetensors"))
    bad = diverged(out_dir)
    if bad:
        import warnings

        warnings.warn(f"{len(bad)} of {recipe.n_nets} source nets diverged and are left out: "
                      + "; ".join(d["message"] for d in bad), stacklevel=2)
    if not paths:
        raise TrainingError(f"Every source net diverged ({len(bad)} of {recipe.n_nets}); lower the learning rate "
                            f"or the L2 weight (delete {out_dir / DIVERGED_FILE} to retry them).")
    return paths


def summarize(paths: list[Path]) -> dict[str, float]:
    """Mean/min validation accuracy over checkpoints (read from their headers)."""
    from dwp_hub.training.harvest import read_checkpoint

    accs = [read_checkpoint(p)[1]["val_accuracy"] for p in paths]
    return {"n": len(accs), "val_acc_mean": float(np.mean(accs)), "val_acc_min": float(np.min(accs))}


def source_dir(recipe: SourceRecipe, work_dir: str | Path) -> Path:
    """Folder for the checkpoints of ``recipe``: keyed by a hash of the recipe, so every prior
    built from the same source recipe shares (and resumes) the same networks."""
    import hashlib
    import json

    key = hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    return Path(work_dir) / f"sources-{recipe.dataset}-{recipe.net.arch}-{key}"
