"""Source networks that diverge (issue 11, bad input): the net is stopped and recorded, the others go on, a recipe
whose every net diverges fails clearly, a resumed build reuses finished nets and never reads half-written ones."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest
import torch

from dwp_hub.errors import SourceDivergedError, TrainingError
from dwp_hub.model.nets import NetConfig
from dwp_hub.training import source

RECIPE = source.SourceRecipe(dataset="notmnist", net=NetConfig("fconv", (2, 4)), n_nets=3, seed=10, epochs=1,
                             lr=1e-3, batch_size=512)


def _poison(monkeypatch: pytest.MonkeyPatch, seeds: set[int]) -> None:
    """Nets of these seeds start with a NaN weight, so their first loss is NaN."""
    real = source.xavier_init_

    def init(net: torch.nn.Module, gen: torch.Generator) -> torch.nn.Module:
        real(net, gen)
        if gen.initial_seed() in seeds:
            with torch.no_grad():
                next(net.parameters()).view(-1)[0] = float("nan")
        return net

    monkeypatch.setattr(source, "xavier_init_", init)


@pytest.mark.usefixtures("data_root")
def test_a_diverging_net_is_stopped_recorded_and_the_others_go_on(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _poison(monkeypatch, {RECIPE.seed + 1})
    with pytest.raises(SourceDivergedError, match=r"Source net 1 \(seed 11\): loss became nan in epoch 0") as exc:
        source.train_one(RECIPE, 1, tmp_path / "one")
    assert (exc.value.index, exc.value.epoch) == (1, 0) and isinstance(exc.value, TrainingError)
    assert not any((tmp_path / "one").glob("*.safetensors"))  # nothing written for it

    out = tmp_path / "nets"
    with pytest.warns(UserWarning, match="1 of 3 source nets diverged and are left out"):
        paths = source.train_sources(RECIPE, out, progress=False)
    assert [p.name for p in paths] == ["notmnist-fconv-000.safetensors", "notmnist-fconv-002.safetensors"]
    record = json.loads((out / source.DIVERGED_FILE).read_text())
    assert [(d["index"], d["epoch"]) for d in record] == [(1, 0)] and "Lower the learning rate" in record[0]["message"]
    assert source.diverged(out) == record

    # resumed: finished nets are reused as they are, the diverged one is not retried
    mtimes = {p.name: p.stat().st_mtime_ns for p in paths}
    calls: list[int] = []
    real_train_one = source.train_one
    monkeypatch.setattr(source, "train_one", lambda r, i, *a, **k: calls.append(i) or real_train_one(r, i, *a, **k))
    with pytest.warns(UserWarning, match="1 of 3"):
        again = source.train_sources(RECIPE, out, progress=False)
    assert calls == [] and {p.name: p.stat().st_mtime_ns for p in again} == mtimes


@pytest.mark.usefixtures("data_root")
def test_a_recipe_whose_every_net_diverges_fails_with_what_to_do(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _poison(monkeypatch, {RECIPE.seed + i for i in range(RECIPE.n_nets)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError,
                           match=r"Every source net diverged \(3 of 3\); lower the learning rate") as exc:
            source.train_sources(RECIPE, tmp_path / "nets", progress=False)
    assert "diverged.json to retry them" in str(exc.value)


@pytest.mark.usefixtures("data_root")
def test_a_kill_while_saving_leaves_no_checkpoint_under_the_final_name(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub.training import _ckpt

    def dies_midway(tensors, filename, metadata=None):  # type: ignore[no-untyped-def]
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(_ckpt, "save_file", dies_midway)
    out = tmp_path / "nets"
    with pytest.raises(KeyboardInterrupt):
        source.train_sources(dataclasses.replace(RECIPE, n_nets=1), out, progress=False)
    assert not list(out.glob("*.safetensors"))  # the partial bytes never reached a checkpoint's name
    assert not [p for p in out.iterdir() if p.read_bytes() == b"partial"]  # and the temp file is gone


@pytest.mark.usefixtures("data_root")
def test_a_half_written_checkpoint_is_never_read_and_its_net_is_trained_again(tmp_path: Path) -> None:
    out = tmp_path / "nets"
    out.mkdir()
    # what a kill during save_checkpoint leaves: the temp file beside the final name, never the final name
    (out / ".notmnist-fconv-000.safetensors.x1y2.tmp").write_bytes(b"partial")
    recipe = dataclasses.replace(RECIPE, n_nets=1)
    paths = source.train_sources(recipe, out, progress=False)
    assert [p.name for p in paths] == ["notmnist-fconv-000.safetensors"]
    from dwp_hub.training.harvest import read_checkpoint

    state, meta = read_checkpoint(paths[0])
    assert meta["index"] == 0 and all(torch.isfinite(v).all() for v in state.values())
    assert os.path.getsize(paths[0]) > 100


@pytest.mark.parametrize("change", [{"dataset": "mnist"}, {"net": NetConfig("fconv", (2, 5))}, {"n_nets": 4},
                                    {"seed": 11}, {"epochs": 2}, {"lr": 2e-3}, {"batch_size": 256}, {"l2": 0.0},
                                    {"split_seed": 1}, {"augment": "affine"}])
def test_every_recipe_field_keys_the_source_cache(tmp_path: Path, change: dict) -> None:
    """Nets trained under another recipe are never reused: each field of the recipe changes its folder."""
    assert source.source_dir(dataclasses.replace(RECIPE, **change), tmp_path) != source.source_dir(RECIPE, tmp_path)
    assert source.source_dir(dataclasses.replace(RECIPE), tmp_path) == source.source_dir(RECIPE, tmp_path)


@pytest.mark.usefixtures("data_root")
def test_the_l2_term_shrinks_the_conv_weights_and_the_seed_is_recorded(tmp_path: Path) -> None:
    from dwp_hub.training.harvest import read_checkpoint

    def conv_l2(recipe: source.SourceRecipe, name: str) -> float:
        state, meta = read_checkpoint(source.train_one(recipe, 1, tmp_path / name))
        assert meta["seed"] == recipe.seed + 1 and meta["index"] == 1 and meta["recipe"] == recipe.to_dict()
        return sum(float((state[k] ** 2).sum()) for k in ("0.weight", "0.bias", "3.weight", "3.bias"))

    free = conv_l2(dataclasses.replace(RECIPE, l2=0.0, lr=1e-2), "free")
    penalised = conv_l2(dataclasses.replace(RECIPE, l2=1.0, lr=1e-2), "l2")
    assert penalised < 0.5 * free, (penalised, free)
