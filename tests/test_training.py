"""The publishing pipeline: harvest, fit, publish, build (issue 3), on tiny inputs."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dwp_hub.card import ArchConfig, card_from_weights_file
from dwp_hub.cli import app
from dwp_hub.errors import (
    CheckpointError, IntegrityError, InvalidNameError, InvalidVersionError, PriorExistsError, RecipeError,
    TrainingError, UnsupportedLayerError,
)
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.fit import FitRecipe, NonFiniteLossError, fit_vae
from dwp_hub.training.harvest import HarvestSpec, KernelDataset, PruneRule, harvest, read_checkpoint
from dwp_hub.training.publish import publish
from dwp_hub.training.recipe import build, load_recipe, parse_recipe

from helpers import build_tiny_prior, synthetic_kernels


def _fake_sources(folder: Path, n: int = 4, widths: tuple[int, int] = (6, 8)) -> list[Path]:
    """Safetensors checkpoints of randomly initialised fconv nets, with some zeroed kernels."""
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        net = build_net(NetConfig("fconv", widths))
        with torch.no_grad():
            net[0].weight[:2] = 0.0  # two dead 7x7 kernels per net
        path = folder / f"net{i}.safetensors"
        save_checkpoint(path, net.state_dict(), {"val_accuracy": 0.5, "dataset_sha256": "ab" * 32, "split": "test"})
        paths.append(path)
    return paths


def test_harvest_selects_prunes_and_splits_by_network(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path)
    data = harvest(paths, HarvestSpec("0.weight", 7, PruneRule("min_norm", 1e-6), held_out=(3,)))
    assert data.train.shape == (3 * 4, 1, 7, 7)  # 6 kernels per net, 2 dead ones pruned
    assert data.held_out.shape == (4, 1, 7, 7)
    m = data.meta
    assert m["kernels_total"] == 24 and m["kernels_kept"] == 16 and m["held_out_nets"] == [3]
    assert [s["file"] for s in m["sources"]] == [p.name for p in paths]
    assert all(len(s["sha256"]) == 64 for s in m["sources"])
    # held-out kernels are exactly net 3's live kernels
    net3 = read_checkpoint(paths[3])[0]["0.weight"][2:]
    assert torch.equal(data.held_out, net3)


def test_harvest_top_fraction_and_cap(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path)
    spec = HarvestSpec("3.weight", 5, PruneRule("top_fraction", 0.5), held_out=(0,), max_kernels_per_net=10)
    data = harvest(paths, spec)
    assert len(data.held_out) == 10 and len(data.train) == 30  # capped at 10 per net
    kernels = [read_checkpoint(p)[0]["3.weight"].reshape(-1, 1, 5, 5) for p in paths]
    norms = torch.cat([k.flatten(1).norm(dim=1) for k in kernels])
    threshold = data.meta["prune"]["threshold"]
    assert threshold == pytest.approx(float(norms.median()), rel=0.05)  # the top half by L2 norm
    above = [k[k.flatten(1).norm(dim=1) >= threshold] for k in kernels]
    assert all(len(k) > 10 for k in above)  # so the cap, not the rule, set the counts
    for got, pool in ((data.held_out, above[0]), (data.train, torch.cat(above[1:]))):
        # every kept kernel is one of its nets' kernels at or above the threshold
        assert all(any(torch.equal(g, c) for c in pool) for g in got)


def test_harvest_round_trip(tmp_path: Path) -> None:
    data = harvest(_fake_sources(tmp_path), HarvestSpec("0.weight", 7, held_out=(1,)))
    data.save(tmp_path / "k.safetensors")
    again = KernelDataset.load(tmp_path / "k.safetensors")
    assert torch.equal(again.train, data.train) and again.meta == data.meta


def test_harvest_reads_third_party_state_dict_weights_only(tmp_path: Path) -> None:
    net = build_net(NetConfig("fconv3", (4, 4, 4)))
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    path = tmp_path / "third_party.th"
    torch.save({"state_dict": state, "best_prec1": 91.5}, path)
    loaded, meta = read_checkpoint(path)
    assert "0.weight" in loaded and meta == {"best_prec1": 91.5}
    data = harvest([path, path], HarvestSpec("[36].weight", 3, PruneRule("none"), held_out=(1,)))
    assert len(data.train) == 32 and data.meta["sources"][0]["best_prec1"] == 91.5


class _Evil:
    """Unpickling this creates ``marker``: proof that a full (code-running) unpickle happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("case", ["truncated", "pickle_code", "garbage", "missing", "not_tensors"])
def test_bad_checkpoints_are_refused(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.th"
    marker = tmp_path / "pickle-code-ran"
    if case == "truncated":
        torch.save(build_net(NetConfig("fconv", (2, 2))).state_dict(), path)
        path.write_bytes(path.read_bytes()[:200])
    elif case == "pickle_code":
        torch.save({"x": _Evil(marker)}, path)
    elif case == "garbage":
        path.write_bytes(b"\x00garbage" * 10)
    elif case == "not_tensors":
        torch.save({"a": 1}, path)
    with pytest.raises(CheckpointError, match="weights-only" if case == "pickle_code" else "."):
        read_checkpoint(path)
    assert not marker.exists(), "the checkpoint's pickled code ran: torch.load without weights_only=True"


def test_truncated_safetensors_checkpoint(tmp_path: Path) -> None:
    path = _fake_sources(tmp_path, n=1)[0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="safetensors"):
        harvest([path], HarvestSpec("0.weight", 7))


def test_harvest_errors(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path, n=2)
    with pytest.raises(CheckpointError, match="Conv weights there: 0.weight, 3.weight"):
        harvest(paths, HarvestSpec("features.*", 7))
    with pytest.raises(CheckpointError, match="no 5x5 kernels"):
        harvest(paths, HarvestSpec("0.weight", 5))
    with pytest.raises(UnsupportedLayerError, match="not supported"):
        harvest(paths, HarvestSpec("0.weight", 4))
    with pytest.raises(CheckpointError, match="No kernels left after pruning"):
        harvest(paths, HarvestSpec("0.weight", 7, PruneRule("min_norm", 1e6)))
    with pytest.raises(CheckpointError, match="out of range"):
        harvest(paths, HarvestSpec("0.weight", 7, held_out=(5,)))


def test_fit_nan_guard_keeps_last_good_state() -> None:
    data = synthetic_kernels(7, n=64, n_held=8)
    data.train[-1, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 0") as info:
        fit_vae(data, ArchConfig("conv7", 7, 2, 4), FitRecipe(epochs=2, batch_size=64), progress=False)
    assert isinstance(info.value, TrainingError)
    assert all(torch.isfinite(v).all() for v in info.value.last_good_state.values())


def test_fit_rejects_mismatched_kernels() -> None:
    with pytest.raises(TrainingError, match="5x5"):
        fit_vae(synthetic_kernels(5), ArchConfig("conv7", 7, 2, 4), FitRecipe(epochs=1), progress=False)


def test_fit_learns_and_reports_metrics() -> None:
    data = synthetic_kernels(3, n=512, n_held=128)
    result = fit_vae(data, ArchConfig("mlp", 3, 2, 32), FitRecipe(epochs=30, iw_k=64, iw_max_kernels=64),
                     progress=False)
    assert result.history[-1] > result.history[0] + 5  # the ELBO improves
    m = result.metrics
    assert m.iw_k == 64 and m.n_heldout_kernels == 128 and m.n_iw_kernels == 64
    assert m.heldout_iw_log_likelihood >= m.heldout_elbo - 1.0  # IW bound is at least as tight (up to noise)


def test_publish_is_immutable_and_leaves_nothing_behind(tmp_path: Path) -> None:
    fitted = build_tiny_prior(tmp_path / "fit", "x", ArchConfig("mlp", 3, 2, 8), epochs=1)
    dest = publish(fitted, "my-prior", "1.0.0", tmp_path / "reg", "desc").path
    card = card_from_weights_file(dest / "model.safetensors")
    assert (card.name, card.version, card.description) == ("my-prior", "1.0.0", "desc")
    with pytest.raises(PriorExistsError, match="immutable"):
        publish(fitted, "my-prior", "1.0.0", tmp_path / "reg")
    publish(fitted, "my-prior", "1.0.1", tmp_path / "reg")
    assert sorted(p.name for p in (tmp_path / "reg" / "my-prior").iterdir()) == ["1.0.0", "1.0.1"]
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.startswith(".staging")]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(IntegrityError, match="Cannot write"):
        publish(fitted, "my-prior", "2.0.0", blocker / "reg")


def _tiny_recipe(tmp_path: Path, checkpoints: list[Path]) -> Path:
    recipe = {
        "name": "tiny-build", "version": "0.1.0", "description": "tiny",
        "source": {"checkpoints": [str(p) for p in checkpoints], "domain": "synthetic", "network": "fconv(6,8)"},
        "harvest": {"layer": "3.weight", "kernel_size": 5, "prune": {"rule": "min_norm", "value": 0.0},
                    "held_out": [3], "max_kernels_per_net": 16},
        "vae": {"kind": "conv5", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 2, "iw_k": 8, "iw_max_kernels": 8, "seed": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_build_is_reproducible(tmp_path: Path) -> None:
    recipe = load_recipe(_tiny_recipe(tmp_path, _fake_sources(tmp_path)))
    a = build(recipe, tmp_path / "reg-a", tmp_path / "work-a", progress=False)
    b = build(recipe, tmp_path / "reg-b", tmp_path / "work-b", progress=False)
    ca, cb = card_from_weights_file(a / "model.safetensors"), card_from_weights_file(b / "model.safetensors")
    assert ca.weights_sha256 == cb.weights_sha256
    assert ca.metrics == cb.metrics
    assert (a / "recipe.yaml").read_text() == (tmp_path / "tiny.yaml").read_text()
    assert ca.recipe["rebuild"] == f"dwp-hub build {tmp_path / 'tiny.yaml'} --to DIR"


def _tiny_real_recipe(name: str) -> Any:
    """Two 4-wide notMNIST source nets, one epoch each, and a tiny 7x7 VAE."""
    return parse_recipe({
        "name": name, "version": "0.0.1",
        "source": {"dataset": "notmnist", "net": {"arch": "fconv", "widths": [4, 4]}, "n_nets": 2, "epochs": 1},
        "harvest": {"layer": "0.weight", "kernel_size": 7, "held_out": [1], "min_kernels": 1},
        "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 2, "iw_k": 4, "iw_max_kernels": 4},
    })


def test_build_from_real_source_training_is_reproducible(tmp_path: Path, data_root: Path) -> None:
    recipe = _tiny_real_recipe("tiny-real")
    a = build(recipe, tmp_path / "ra", tmp_path / "wa", progress=False)
    b = build(recipe, tmp_path / "rb", tmp_path / "wb", progress=False)
    ca, cb = card_from_weights_file(a / "model.safetensors"), card_from_weights_file(b / "model.safetensors")
    assert ca.weights_sha256 == cb.weights_sha256
    assert ca.source.domain == "notmnist" and len(ca.source.dataset_sha256) == 64
    assert ca.training.build_seconds is not None and ca.training.build_seconds > 0


def test_build_on_nets_trained_elsewhere_counts_their_recorded_training_time(tmp_path: Path, data_root: Path) -> None:
    """A study (or another tool) filled the source cache without a timing record: the card's from-scratch
    build time still includes the nets' recorded training time, not the ~0 s of finding them."""
    from dwp_hub.training.source import source_dir, train_sources

    recipe = _tiny_real_recipe("tiny-warm")
    sdir = source_dir(recipe.source, tmp_path / "w")
    nets = train_sources(recipe.source, sdir, progress=False)
    recorded = sum(read_checkpoint(p)[1]["train_seconds"] for p in nets)
    assert not (sdir / "timing.json").exists() and recorded > 0
    start = time.perf_counter()
    folder = build(recipe, tmp_path / "r", tmp_path / "w", progress=False, workers=2)
    wall = time.perf_counter() - start
    timing = json.loads((sdir / "timing.json").read_text())
    assert timing["reused_nets"] == 2 and timing["reused_train_seconds"] == pytest.approx(recorded, abs=0.1)
    card = card_from_weights_file(folder / "model.safetensors")
    # the card rounds to 0.1 s: allow half of that either way
    assert card.training.build_seconds >= recorded / 2 - 0.05  # the nets' time spread over the 2 workers ...
    assert card.training.build_seconds <= wall + recorded / 2 + 1  # ... plus this build's own time


@pytest.mark.parametrize("edit, error, match", [
    ({"name": "../evil"}, InvalidNameError, "path separators"),
    ({"version": "1.0"}, InvalidVersionError, "MAJOR.MINOR.PATCH"),
    ({"vae": {"kind": "conv7", "z_dim": 2, "hidden": 4}}, RecipeError, "kernel_size"),
    ({"harvest": {"layer": "x", "kernel_size": 5, "bogus": 1}}, RecipeError, "bogus"),
    ({"extra": 1}, RecipeError, "Unknown recipe key"),
    ({"harvest": {"layer": "x", "kernel_size": 5, "prune": {"rule": "min_norm", "value": "PRUNE"}}}, RecipeError,
     "must be a number"),
    ({"harvest": {"layer": "x", "kernel_size": 5, "prune": {"rule": "biggest"}}}, RecipeError, "Unknown prune rule"),
    ({"vae": {"kind": "conv5", "z_dim": 2, "hidden": 4, "activation": "gelu"}}, RecipeError, "Unknown activation"),
])
def test_bad_recipes(tmp_path: Path, edit: dict, error: type[Exception], match: str) -> None:
    data = yaml.safe_load(_tiny_recipe(tmp_path, []).read_text())
    data.update(edit)
    with pytest.raises(error, match=match):
        parse_recipe(data)


@pytest.mark.parametrize("edit, key", [
    ({"fit": {"epochs": -5}}, "fit.epochs"), ({"fit": {"lr": -1}}, "fit.lr"), ({"fit": {"batch_size": 0}}, "fit.batch_size"),
    ({"fit": {"iw_k": 0}}, "fit.iw_k"), ({"fit": {"lr": float("nan")}}, "fit.lr"), ({"fit": {"seed": 2**70}}, "fit.seed"),
    ({"fit": {"epochs": True}}, "fit.epochs"), ({"reference_elbo": [1, 2]}, "recipe.reference_elbo"),
    ({"name": 123}, "name"), ({"description": ["a"]}, "description"),
    ({"harvest": {"layer": "x", "kernel_size": 5, "held_out": ["a"]}}, "harvest.held_out"),
])
def test_recipe_values_are_validated(tmp_path: Path, edit: dict, key: str) -> None:
    """Issue 16 item 14: ranges and types checked up front, the key named."""
    data = yaml.safe_load(_tiny_recipe(tmp_path, []).read_text())
    data.update(edit)
    with pytest.raises(RecipeError, match=re.escape(key)) as info:
        parse_recipe(data)
    assert info.value.key == key or key in ("name", "description")


def test_recipe_source_dataset_never_escapes_work_dir(tmp_path: Path) -> None:
    """Issue 16 item 11: names that become paths are validated before the file system is touched."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "x", "version": "1.0.0", "source": {"dataset": "../../outside", "net": {"arch": "fconv", "widths": [4, 4]}},
        "harvest": {"layer": "0.weight", "kernel_size": 7}, "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4}}))
    work = tmp_path / "deep" / "er" / "work"
    with pytest.raises(RecipeError, match="source.dataset"):
        build(load_recipe(recipe), tmp_path / "reg", work, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]


def _laughs(field: str) -> str:
    """A recipe whose ``field`` expands to 10**9 'lol's through nested aliases (under 1 KB of YAML)."""
    other = "description: d" if field == "name" else "name: x"
    anchors = ["_0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    anchors += [f"_{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "\n".join([
        "version: 1.0.0", other, "source: {checkpoints: [x]}", "harvest: {layer: x, kernel_size: 5}",
        "vae: {kind: conv5, z_dim: 2, hidden: 4}",
        f"{field}: [" + ", ".join(a.split(": ", 1)[1] for a in anchors) + "]",
    ]) + "\n"


@pytest.mark.parametrize("field", ["name", "description"])
def test_billion_laughs_recipe_is_refused_fast(tmp_path: Path, field: str) -> None:
    """Issue 16 item 9: ~800 bytes of anchors must not expand to gigabytes; the error echoes no value."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs(field))
    assert bomb.stat().st_size < 1200
    with pytest.raises(RecipeError) as info:
        load_recipe(bomb)
    assert len(str(info.value)) < 600 and "lol, lol, lol" not in str(info.value)


def test_recipe_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_bytes(b"name: \xff\xfe\n")  # issue 16 item 13: not UTF-8
    with pytest.raises(RecipeError, match="not UTF-8"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="directory"):  # a directory given as the recipe
        load_recipe(tmp_path)


def test_relu_recipe_builds_a_relu_prior_and_elu_cards_omit_the_field(tmp_path: Path) -> None:
    """``vae.activation`` travels recipe -> card -> loaded module; ELU (the default) is not written,
    so ELU cards stay readable by dwp-hub 0.1.0, which does not know the field."""
    from dwp_hub._api import load_folder

    data = yaml.safe_load(_tiny_recipe(tmp_path, _fake_sources(tmp_path)).read_text())
    data["vae"]["activation"] = "relu"
    relu_dir = build(parse_recipe(data), tmp_path / "reg", tmp_path / "work", progress=False)
    card = card_from_weights_file(relu_dir / "model.safetensors")
    assert card.arch.activation == "relu" and json.loads(card.to_json())["arch"]["activation"] == "relu"
    prior = load_folder(relu_dir)
    acts = {type(m) for m in prior.vae.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ELU))}
    assert acts == {torch.nn.ReLU}
    elu = dataclasses.replace(card, arch=dataclasses.replace(card.arch, activation="elu"))
    assert "activation" not in json.loads(elu.to_json())["arch"]


def test_cli_fit_activation_defaults_and_override(tmp_path: Path) -> None:
    runner = CliRunner()
    spec = HarvestSpec(layer="0.weight", kernel_size=7, prune=PruneRule("none"), held_out=(3,))
    meta = {**harvest(_fake_sources(tmp_path), spec).meta, "kernel_size": 3}
    g = torch.Generator().manual_seed(0)
    kernels = tmp_path / "k3.safetensors"
    KernelDataset(torch.randn(40, 1, 3, 3, generator=g) * 0.1, torch.randn(8, 1, 3, 3, generator=g) * 0.1,
                  meta).save(kernels)
    for extra, expected in (([], "relu"), (["--activation", "elu"], "elu")):
        out = tmp_path / f"fit-{expected}"
        r = runner.invoke(app, ["fit", str(kernels), "--out", str(out), "--epochs", "1", "--hidden", "4",
                                "--iw-k", "4", "-q", *extra])
        assert r.exit_code == 0, r.output
        assert card_from_weights_file(out / "model.safetensors").arch.activation == expected
    r = runner.invoke(app, ["fit", str(kernels), "--out", str(tmp_path / "bad"), "--activation", "gelu", "-q"])
    assert r.exit_code == 2 and "gelu" in r.output and "elu" in r.output and "Traceback" not in r.output  # a usage error


def test_shipped_recipes_parse() -> None:
    recipes = sorted((Path(__file__).parents[1] / "tools" / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path)
        assert path.stem == recipe.name


def test_cli_pipeline(tmp_path: Path) -> None:
    runner = CliRunner()
    paths = _fake_sources(tmp_path)
    kernels = tmp_path / "k.safetensors"
    r = runner.invoke(app, ["harvest", *map(str, paths), "--layer", "0.weight", "-k", "7", "--min-norm", "1e-6",
                            "--held-out", "3", "--out", str(kernels)])
    assert r.exit_code == 0, r.output
    assert "Kept 16 of 24" in r.output
    r = runner.invoke(app, ["fit", str(kernels), "--out", str(tmp_path / "fit"), "--epochs", "2", "--hidden", "4",
                            "--iw-k", "8", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["publish", str(tmp_path / "fit"), "--name", "cli-prior", "--version", "1.2.3",
                            "--to", str(tmp_path / "reg")])
    assert r.exit_code == 0, r.output
    index = json.loads((tmp_path / "reg" / "index.json").read_text())
    assert list(index["priors"]["cli-prior"]) == ["1.2.3"]
    r = runner.invoke(app, ["publish", str(tmp_path / "fit"), "--name", "cli-prior", "--version", "1.2.3",
                            "--to", str(tmp_path / "reg")])
    assert r.exit_code == 1 and "immutable" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["build", str(_tiny_recipe(tmp_path, paths)), "--to", str(tmp_path / "reg"),
                            "--work-dir", str(tmp_path / "w"), "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["harvest", str(tmp_path / "missing.th"), "--layer", "x", "-k", "7"])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_cli_train_source(tmp_path: Path, data_root: Path) -> None:
    r = CliRunner().invoke(app, ["train-source", "--dataset", "notmnist", "--widths", "2,2", "--n-nets", "1",
                                 "--epochs", "1", "--out", str(tmp_path / "src"), "-q"])
    assert r.exit_code == 0, r.output
    ckpt = next((tmp_path / "src").glob("*.safetensors"))
    state, meta = read_checkpoint(ckpt)
    assert state["0.weight"].shape == (2, 1, 7, 7)
    assert 0.0 <= meta["val_accuracy"] <= 1.0 and meta["recipe"]["net"]["widths"] == [2, 2]


# -- issue 16: hostile checkpoints (items 12, 13) ----------------------------------------------------------
def _zip_bomb(path: Path, mib: int = 16) -> None:
    """A torch checkpoint of zeros re-packed with deflate: tiny on disk, ``mib`` MiB unpacked."""
    import zipfile

    plain = path.with_suffix(".plain")
    torch.save({"0.weight": torch.zeros(mib * (1 << 18) // 49, 1, 7, 7)}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    plain.unlink()


def test_zip_bomb_checkpoint_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pt"
    _zip_bomb(bomb)
    assert bomb.stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="zip bomb"):
        harvest([bomb], HarvestSpec("0.weight", 7))


def test_checkpoint_size_cap_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "net.pt"
    torch.save({"0.weight": torch.randn(6000, 1, 7, 7)}, path)  # about 1.2 MB
    assert read_checkpoint(path)[0]["0.weight"].shape == (6000, 1, 7, 7)
    monkeypatch.setenv("DWP_HUB_MAX_CHECKPOINT_MB", "0.5")
    with pytest.raises(CheckpointError, match="DWP_HUB_MAX_CHECKPOINT_MB"):
        read_checkpoint(path)


@pytest.mark.parametrize("meta", ["{not json", "[1, 2]", "[" * 5000 + "]" * 5000])
def test_bad_source_metadata_in_header(tmp_path: Path, meta: str) -> None:
    from safetensors.torch import save_file

    from dwp_hub.training._ckpt import SOURCE_META_KEY

    path = tmp_path / "net.safetensors"
    save_file({"0.weight": torch.randn(4, 1, 7, 7)}, str(path), metadata={SOURCE_META_KEY: meta})
    with pytest.raises(CheckpointError, match=SOURCE_META_KEY):
        harvest([path], HarvestSpec("0.weight", 7))


def test_checkpoint_with_zero_kernels(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    torch.save({"0.weight": torch.zeros(0, 1, 7, 7)}, path)
    with pytest.raises(CheckpointError, match="zero kernels"):
        harvest([path], HarvestSpec("0.weight", 7))


def test_checkpoint_fifo_does_not_hang(tmp_path: Path) -> None:
    import os

    path = tmp_path / "net.pt"
    os.mkfifo(path)
    with pytest.raises(CheckpointError, match="FIFO"):
        read_checkpoint(path)


def test_cli_harvest_bad_held_out_is_a_usage_error(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path, n=2)
    res = CliRunner().invoke(app, ["harvest", *map(str, paths), "--layer", "0.weight", "-k", "7", "--held-out", "a",
                                   "--out", str(tmp_path / "k.safetensors")])
    assert res.exit_code == 2 and "--held-out" in res.output and "Traceback" not in res.output


def test_build_refuses_a_recipe_whose_pruning_keeps_too_few_kernels(tmp_path: Path) -> None:
    raw = yaml.safe_load(_tiny_recipe(tmp_path, _fake_sources(tmp_path)).read_text())
    raw["harvest"]["min_kernels"] = 1000
    with pytest.raises(RecipeError, match=r"Pruning kept \d+ of \d+ kernels .*at least 1000 training kernels.*n_nets"):
        build(parse_recipe(raw), tmp_path / "reg", tmp_path / "work", progress=False)
    assert not (tmp_path / "reg").exists() or not any((tmp_path / "reg").iterdir())


def test_recipe_transfer_section(tmp_path: Path) -> None:
    raw = yaml.safe_load(_tiny_recipe(tmp_path, _fake_sources(tmp_path)).read_text())
    raw["transfer"] = {"dataset": "mnist", "seeds": [0, 1], "steps": 10}
    recipe = parse_recipe(raw)
    assert recipe.transfer.seeds == (0, 1) and recipe.transfer.n_train == 50
    raw["transfer"] = {"dataset": "cifar10"}
    with pytest.raises(RecipeError, match="transfer"):
        parse_recipe(raw)


def test_build_refuses_an_existing_version_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(_tiny_recipe(tmp_path, _fake_sources(tmp_path)))
    build(recipe, tmp_path / "reg", tmp_path / "work", progress=False)
    import dwp_hub.training.fit as fit_module

    def no_fitting(*a: object, **k: object) -> None:
        raise AssertionError("refit before refusing")

    monkeypatch.setattr(fit_module, "fit_vae", no_fitting)
    with pytest.raises(PriorExistsError, match="already exists.*Raise the recipe's version"):
        build(recipe, tmp_path / "reg", tmp_path / "work", progress=False)


# -- the fit objective, schedule, metrics and NaN guard, checked against what the recipe says -------------
def test_fit_history_is_the_mean_training_elbo_per_kernel_of_each_epoch_from_the_seeded_start() -> None:
    """One batch per epoch: epoch 0's history entry is the ELBO of the seeded initial VAE on the seeded batch
    order and noise, averaged per kernel (the loss is summed over the batch); one entry per epoch."""
    from dwp_hub.model.vae import KernelVAE

    data = synthetic_kernels(3, n=40, n_held=8)
    arch, recipe = ArchConfig("mlp", 3, 2, 8), FitRecipe(epochs=3, batch_size=64, seed=5, iw_k=2, iw_max_kernels=2)
    result = fit_vae(data, arch, recipe, progress=False)
    assert len(result.history) == recipe.epochs
    torch.manual_seed(recipe.seed)
    vae = KernelVAE(arch)
    gen = torch.Generator().manual_seed(recipe.seed)
    perm = torch.randperm(len(data.train), generator=gen)
    with torch.no_grad():
        want = float(vae.elbo(data.train[perm], generator=gen).sum()) / len(data.train)
    assert result.history[0] == pytest.approx(want, rel=1e-5)
    other = fit_vae(data, arch, dataclasses.replace(recipe, seed=6), progress=False)
    assert other.history[0] != pytest.approx(want, rel=1e-3)  # the seed is used, not a fixed one


def test_fit_learning_rate_decays_linearly_to_zero_over_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    lrs: list[float] = []
    real_step = torch.optim.Adam.step

    def step(self: torch.optim.Adam, *a: Any, **k: Any) -> Any:
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    recipe = FitRecipe(epochs=3, lr=0.01, batch_size=16, iw_k=2, iw_max_kernels=2)
    fit_vae(synthetic_kernels(3, n=40, n_held=8), ArchConfig("mlp", 3, 2, 8), recipe, progress=False)
    steps = 3 * 3  # 3 epochs of ceil(40 / 16) batches
    assert lrs == pytest.approx([0.01 * (1 - s / steps) for s in range(steps)])


def test_fit_metrics_are_measured_on_the_held_out_kernels_and_stats_on_the_training_ones() -> None:
    """Held-out kernels far from the training ones: the held-out ELBO / IW figures are those of the held-out
    kernels alone (not the training set, not both), the train ELBO that of the training kernels."""
    from dwp_hub.training.fit import evaluate

    data = synthetic_kernels(3, n=96, n_held=24)
    data.held_out.mul_(6.0)
    recipe = FitRecipe(epochs=5, batch_size=32, seed=2, iw_k=8, iw_max_kernels=16)
    result = fit_vae(data, ArchConfig("mlp", 3, 2, 8), recipe, progress=False)
    m = result.metrics
    held_elbo, held_iw, n_iw = evaluate(result.vae, data.held_out, recipe)
    assert (m.heldout_elbo, m.heldout_iw_log_likelihood) == (round(held_elbo, 4), round(held_iw, 4))
    assert m.n_heldout_kernels == 24 and m.n_iw_kernels == n_iw == 16
    train_elbo = evaluate(result.vae, data.train, FitRecipe(iw_k=1, iw_max_kernels=1, seed=recipe.seed))[0]
    assert m.train_elbo == round(train_elbo, 4)
    assert m.heldout_elbo < m.train_elbo - 1  # the scaled-up held-out kernels fit worse
    assert result.stats.mean == pytest.approx(float(data.train.mean()))
    assert result.stats.std == pytest.approx(float(data.train.std()))


def test_fit_nan_guard_returns_the_weights_of_the_last_finished_epoch() -> None:
    """A NaN in the second batch of epoch 0: the last good state is the seeded initial VAE, not the weights after
    the first step of the epoch that failed."""
    from dwp_hub.model.vae import KernelVAE

    data = synthetic_kernels(3, n=64, n_held=8)
    arch, recipe = ArchConfig("mlp", 3, 2, 8), FitRecipe(epochs=2, batch_size=32, seed=4)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(recipe.seed))
    data.train[perm[40], 0, 0, 0] = float("nan")  # in the second batch
    with pytest.raises(NonFiniteLossError, match="epoch 0, step 1") as info:
        fit_vae(data, arch, recipe, progress=False)
    torch.manual_seed(recipe.seed)
    initial = KernelVAE(arch).state_dict()
    assert info.value.last_good_state.keys() == initial.keys()
    assert all(torch.equal(info.value.last_good_state[k], v) for k, v in initial.items())


# -- harvest: the rule's boundaries, the seeded cap, the size filter, the recorded hashes -------------------
def test_harvest_min_norm_keeps_kernels_at_exactly_the_threshold(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path)
    zero = harvest(paths, HarvestSpec("0.weight", 7, PruneRule("min_norm", 0.0), held_out=(3,)))
    assert zero.meta["kernels_kept"] == 24  # "norm >= 0": the dead kernels are kept too
    norms = read_checkpoint(paths[0])[0]["0.weight"].flatten(1).norm(dim=1)
    value = float(norms[2:].min())
    data = harvest(paths[:1], HarvestSpec("0.weight", 7, PruneRule("min_norm", value)))
    assert len(data.train) == int((norms >= value).sum()) and float(data.train.flatten(1).norm(dim=1).min()) == value


def test_harvest_top_fraction_keeps_the_largest_kernels(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path)
    data = harvest(paths, HarvestSpec("3.weight", 5, PruneRule("top_fraction", 0.25)))
    all_norms = torch.cat([read_checkpoint(p)[0]["3.weight"].reshape(-1, 25).norm(dim=1) for p in paths])
    assert len(all_norms) == 192 and len(data.train) == 48  # the top quarter
    kept = data.train.flatten(1).norm(dim=1)
    assert torch.equal(kept.sort().values, all_norms.sort().values[-48:])


def test_harvest_cap_is_a_seeded_random_subset(tmp_path: Path) -> None:
    paths = _fake_sources(tmp_path)

    def take(seed: int) -> torch.Tensor:
        return harvest(paths, HarvestSpec("3.weight", 5, PruneRule("none"), max_kernels_per_net=10, seed=seed)).train

    a, b = take(0), take(1)
    assert a.shape == (40, 1, 5, 5) and torch.equal(a, take(0))
    assert not torch.equal(a, b)  # the harvest seed picks the subset
    first = torch.cat([read_checkpoint(p)[0]["3.weight"].reshape(-1, 1, 5, 5)[:10] for p in paths])
    assert not torch.equal(a, first) and not torch.equal(b, first)  # not just the first kernels of each net


def test_harvest_takes_only_layers_of_the_named_kernel_size(tmp_path: Path) -> None:
    """``*.weight`` matches both convolutions; only the 5x5 one is harvested for kernel size 5, even when the 7x7
    layer's weights could be reshaped into 5x5 kernels (25 x 49 numbers)."""
    paths = _fake_sources(tmp_path, n=2, widths=(25, 8))
    data = harvest(paths, HarvestSpec("*.weight", 5, PruneRule("none"), held_out=(1,)))
    assert data.meta["layers"] == ["3.weight"] and data.meta["kernels_total"] == 2 * 8 * 25
    assert torch.equal(data.held_out, read_checkpoint(paths[1])[0]["3.weight"].reshape(-1, 1, 5, 5))


def test_harvest_records_each_checkpoints_own_sha256(tmp_path: Path) -> None:
    import hashlib

    paths = _fake_sources(tmp_path)
    data = harvest(paths, HarvestSpec("0.weight", 7, held_out=(3,)))
    assert [s["sha256"] for s in data.meta["sources"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


# -- build: the card records the recipe and provenance, and its recipe rebuilds the same prior --------------
def test_build_card_records_the_recipe_and_provenance_and_its_recipe_rebuilds_the_same_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from dwp_hub.training import harvest as harvest_module

    paths = _fake_sources(tmp_path)
    shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    third_party = {"dataset": "some nets", "license": "BSD-2-Clause", "source_url": "https://example.org/nets"}
    monkeypatch.setitem(harvest_module.KNOWN_CHECKPOINTS, shas[1], third_party)
    raw = yaml.safe_load(_tiny_recipe(tmp_path, paths).read_text())
    raw["source"]["domain"] = "mnist"
    raw["fit"].update({"lr": 0.002, "batch_size": 8})
    card = card_from_weights_file(build(parse_recipe(raw), tmp_path / "ra", tmp_path / "wa", progress=False)
                                  / "model.safetensors")
    assert {k: v for k, v in card.recipe.items() if k != "rebuild"} == raw
    t = card.training
    assert (t.epochs, t.lr, t.batch_size, t.seed) == (2, 0.002, 8, 3)
    assert [c["sha256"] for c in card.source.checkpoints] == shas
    assert [c["file"] for c in card.source.checkpoints] == [p.name for p in paths]
    assert [d.dataset for d in card.data_licenses] == ["mnist", "some nets"]
    assert card.data_licenses[1].license == "BSD-2-Clause"
    again = parse_recipe({k: v for k, v in card.recipe.items() if k != "rebuild"})
    card2 = card_from_weights_file(build(again, tmp_path / "rb", tmp_path / "wb", progress=False)
                                   / "model.safetensors")
    assert card2.weights_sha256 == card.weights_sha256 and card2.metrics == card.metrics
