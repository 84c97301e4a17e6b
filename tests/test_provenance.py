"""Issue 14: the step-by-step chain (``train-source`` -> ``harvest`` -> ``fit`` -> ``publish``) carries
provenance from step to step (checkpoint header -> kernel dataset header -> card and ``recipe.yaml``), so it
publishes the card that ``build`` of the equivalent recipe publishes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dwp_hub.card import PriorCard, card_from_weights_file
from dwp_hub.cli import app
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.harvest import HarvestSpec, KernelDataset, harvest, network_label
from dwp_hub.training.publish import STEPWISE_REBUILD, publish
from dwp_hub.training.recipe import CheckpointSource, Recipe, load_recipe, parse_recipe
from dwp_hub.training.source import SourceRecipe, source_dir

runner = CliRunner()

#: Card fields that legitimately differ between two runs of the same computation.
_TIMINGS = {"seconds": 0.0, "peak_memory_mb": 0.0, "build_seconds": None, "build_peak_memory_mb": None}


def _cli(*args: str) -> None:
    res = runner.invoke(app, [*args])
    assert res.exit_code == 0, res.output


def _typed(recipe: dict[str, Any] | Recipe) -> tuple[Any, ...]:
    """A recipe as the typed values ``build`` runs (the raw YAML may leave defaults out)."""
    r = recipe if isinstance(recipe, Recipe) else parse_recipe({k: v for k, v in recipe.items() if k != "rebuild"})
    return r.name, r.version, r.description, r.source, r.harvest, r.arch, r.fit, r.reference_elbo


def _same_card(a: PriorCard, b: PriorCard) -> None:
    """Every card field equal except the run's timings, the creation time, and the recipe's raw form."""
    for f in dataclasses.fields(PriorCard):
        if f.name in ("training", "created", "recipe"):
            continue
        assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert dataclasses.replace(a.training, **_TIMINGS) == dataclasses.replace(b.training, **_TIMINGS)
    assert _typed(a.recipe) == _typed(b.recipe)


def test_step_by_step_chain_publishes_the_card_build_publishes(tmp_path: Path, data_root: Path) -> None:
    raw = {
        "name": "tiny-chain", "version": "0.1.0", "description": "tiny",
        "source": {"dataset": "mnist", "net": {"arch": "fconv", "widths": [8, 8]}, "n_nets": 2, "epochs": 1},
        "harvest": {"layer": "3.weight", "kernel_size": 5, "prune": {"rule": "none"}, "held_out": [1]},
        "vae": {"kind": "conv5", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 2, "iw_k": 8, "seed": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    recipe = load_recipe(path)
    assert isinstance(recipe.source, SourceRecipe)
    work = tmp_path / "work"
    # The chain trains into the folder where build looks for this recipe's nets: both harvest the same checkpoints
    # (that training is reproducible is tested in test_training.py).
    src = source_dir(recipe.source, work)
    _cli("train-source", "--dataset", "mnist", "--widths", "8,8", "--n-nets", "2", "--epochs", "1", "--out", str(src), "-q")
    checkpoints = sorted(map(str, src.glob("*.safetensors")))
    _cli("harvest", *checkpoints, "--layer", "3.weight", "-k", "5", "--held-out", "1", "--out", str(tmp_path / "k.st"))
    _cli("fit", str(tmp_path / "k.st"), "--out", str(tmp_path / "fit"), "--kind", "conv5", "--z-dim", "2", "--hidden",
         "4", "--epochs", "2", "--iw-k", "8", "--seed", "3", "-q")
    _cli("publish", str(tmp_path / "fit"), "--name", "tiny-chain", "--version", "0.1.0", "--description", "tiny",
         "--to", str(tmp_path / "reg-chain"))
    _cli("build", str(path), "--to", str(tmp_path / "reg-build"), "--work-dir", str(work), "-q")

    chain_dir, build_dir = (tmp_path / reg / "tiny-chain" / "0.1.0" for reg in ("reg-chain", "reg-build"))
    chain, built = (card_from_weights_file(d / "model.safetensors") for d in (chain_dir, build_dir))
    _same_card(chain, built)
    assert (chain.source.domain, chain.source.network) == ("mnist", "fconv(8,8)")
    assert len(chain.source.dataset_sha256) == 64 and chain.source.protocol
    assert _typed(chain.recipe) == _typed(recipe)
    assert chain.recipe["rebuild"] == STEPWISE_REBUILD
    # recipe.yaml in the version folder, 'info --recipe', and the README front matter say the same.
    assert _typed(load_recipe(chain_dir / "recipe.yaml")) == _typed(recipe)
    res = runner.invoke(app, ["info", "--recipe", "tiny-chain"], env={"DWP_HUB_REGISTRY": str(tmp_path / "reg-chain")})
    assert res.exit_code == 0, res.output
    assert _typed(yaml.safe_load(res.stdout)) == _typed(recipe)
    for d in (chain_dir, build_dir):
        readme = (d / "README.md").read_text()
        assert "datasets:\n- mnist\n" in readme and "unknown" not in readme
    assert "Rebuild: `dwp-hub build recipe.yaml --to DIR`" in (chain_dir / "README.md").read_text()


# -- the same provenance without training (fast; no data needed) ----------------------------------------------
def _checkpoints(folder: Path, recipe: SourceRecipe | None, indices: list[int]) -> list[Path]:
    """Checkpoints as train-source writes them (random fconv(4,6) weights), with ``recipe`` in their header."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in indices:
        torch.manual_seed(i)
        meta: dict[str, Any] = {"index": i, "val_accuracy": 0.5, "dataset_sha256": "ab" * 32, "split": "test split"}
        if recipe is not None:
            meta["recipe"] = recipe.to_dict()
        path = folder / f"notmnist-fconv-{i:03d}.safetensors"
        save_checkpoint(path, build_net(NetConfig("fconv", (4, 6))).state_dict(), meta)
        paths.append(path)
    return paths


SOURCE = SourceRecipe("notmnist", NetConfig("fconv", (4, 6)), n_nets=5, epochs=3, lr=0.01, batch_size=64)
SPEC = HarvestSpec("0.weight", 7, held_out=(2,), max_kernels_per_net=3, seed=4)


def test_harvest_records_the_source_recipe_of_train_source_checkpoints(tmp_path: Path) -> None:
    data = harvest(_checkpoints(tmp_path, SOURCE, [0, 1, 2]), SPEC)
    assert data.meta["source"] == {"dataset": "notmnist", "dataset_sha256": "ab" * 32, "network": "fconv(4,6)",
                                   "protocol": "test split"}
    made = data.meta["recipe"]
    assert SourceRecipe.from_dict(made["source"]) == dataclasses.replace(SOURCE, n_nets=3)  # the nets harvested
    parsed = parse_recipe({"name": "x", "version": "1.0.0", **made, "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4}})
    assert dataclasses.replace(parsed.harvest, min_kernels=SPEC.min_kernels) == SPEC
    data.save(tmp_path / "k.safetensors")  # the record travels in the file
    assert KernelDataset.load(tmp_path / "k.safetensors").meta["recipe"] == made
    assert network_label(SOURCE.net) == "fconv(4,6)"


@pytest.mark.parametrize("case", ["not the first nets", "another order", "no recipe", "overridden"])
def test_checkpoints_a_source_recipe_cannot_retrain_are_named_as_files(tmp_path: Path, case: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DWP_HUB_DATA", str(tmp_path))
    indices = {"not the first nets": [1, 2, 3], "another order": [1, 0, 2]}.get(case, [0, 1, 2])
    paths = _checkpoints(tmp_path / "ck[1]", None if case == "no recipe" else SOURCE, indices)
    given = {"domain": "cifar10", "network": "ResNet-20"} if case in ("no recipe", "overridden") else {}
    data = harvest(paths, SPEC, **given)
    src = data.meta["recipe"]["source"]
    recipe = parse_recipe({"name": "x", "version": "1.0.0", **data.meta["recipe"],
                           "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4}})
    assert isinstance(recipe.source, CheckpointSource)
    assert recipe.checkpoint_paths() == paths  # relative to the data root, glob characters escaped: the same files
    assert src["domain"] == data.meta["source"]["dataset"] == given.get("domain", "notmnist")
    assert src["network"] == data.meta["source"]["network"] == given.get("network", "fconv(4,6)")


def test_publish_restamps_the_recipe_and_keeps_a_matching_recipe_yaml(tmp_path: Path) -> None:
    folder = tmp_path / "draft"
    _cli("harvest", *map(str, _checkpoints(tmp_path / "ck", SOURCE, [0, 1, 2])), "--layer", "0.weight", "-k", "7",
         "--held-out", "2", "--out", str(tmp_path / "k.st"))
    _cli("fit", str(tmp_path / "k.st"), "--out", str(folder), "--hidden", "4", "--epochs", "1", "--iw-k", "2", "-q")
    draft = card_from_weights_file(folder / "model.safetensors")
    assert (draft.name, draft.recipe["name"], draft.recipe["version"]) == ("unpublished", "unpublished", "0.0.0")
    assert yaml.safe_load((folder / "recipe.yaml").read_text())["source"]["n_nets"] == 3
    first = publish(folder, "my-prior", "1.0.0", tmp_path / "reg", "First.")
    card = card_from_weights_file(first.path / "model.safetensors")
    assert {k: card.recipe[k] for k in ("name", "version", "description")} == {
        "name": "my-prior", "version": "1.0.0", "description": "First."}
    text = (first.path / "recipe.yaml").read_text()
    assert _typed(yaml.safe_load(text)) == _typed(card.recipe)
    assert json.loads((first.path / "checksums.json").read_text())["recipe.yaml"] == first.files["recipe.yaml"]
    again = publish(first.path, "my-prior", "1.0.1", tmp_path / "reg")  # the recipe names the new version
    assert yaml.safe_load((again.path / "recipe.yaml").read_text())["version"] == "1.0.1"
    # A folder whose recipe already names what is published keeps its recipe.yaml as written (comments too).
    edited = tmp_path / "edited"
    edited.mkdir()
    for f in ("model.safetensors", "samples.png"):
        (edited / f).write_bytes((again.path / f).read_bytes())
    (edited / "recipe.yaml").write_text("# hand-written\n" + (again.path / "recipe.yaml").read_text())
    kept = publish(edited, "my-prior", "1.0.1", tmp_path / "other-reg")
    assert (kept.path / "recipe.yaml").read_text().startswith("# hand-written\n")
