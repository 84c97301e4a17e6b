"""Issue 14, "Model cards the Hub renders": the weights' licence (recipe ``license:``; ``--license`` on
fit, build and publish; Hub licence ids only, ``other`` with a name) and the data licences recorded by
harvest and build, in the card, its README front matter and its Licences section."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dwp_hub import constants
from dwp_hub.card import (
    DEFAULT_LICENSE,
    HUB_LICENSES,
    DataLicense,
    PriorCard,
    canonical_license,
    card_from_weights_file,
    check_license,
)
from dwp_hub.cli import app
from dwp_hub.errors import CardError, RecipeError
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.harvest import KNOWN_CHECKPOINTS, HarvestSpec, PruneRule, data_licenses, harvest
from dwp_hub.training.recipe import build, load_recipe, parse_recipe
from dwp_hub.training.source import SourceRecipe

if TYPE_CHECKING:
    from hub_server import HubTestServer

pytest_plugins = ["hub_server"]
runner = CliRunner()
_NEW_KEYS = ("license_name", "license_link", "data_licenses")


def _front(readme: str) -> dict[str, Any]:
    return yaml.safe_load(readme.split("---\n")[1])


def _sources(folder: Path, n: int = 4, dataset: str | None = None) -> list[Path]:
    """Checkpoints of random fconv(6,8) nets; with ``dataset``, as train-source writes them (its recipe inside)."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = SourceRecipe(dataset, NetConfig("fconv", (6, 8)), n_nets=n) if dataset else None
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        meta: dict[str, Any] = {"index": i, "val_accuracy": 0.5, "dataset_sha256": "ab" * 32, "split": "test"}
        if recipe is not None:
            meta["recipe"] = recipe.to_dict()
        path = folder / f"net{i}.safetensors"
        save_checkpoint(path, build_net(NetConfig("fconv", (6, 8))).state_dict(), meta)
        paths.append(path)
    return paths


def _recipe(tmp_path: Path, checkpoints: list[Path], **extra: Any) -> Path:
    raw = {
        "name": "tiny-lic", "version": "0.1.0", "description": "tiny",
        "source": {"checkpoints": [str(p) for p in checkpoints], "domain": "notmnist", "network": "fconv(6,8)"},
        "harvest": {"layer": "3.weight", "kernel_size": 5, "prune": {"rule": "none"}, "held_out": [3],
                    "max_kernels_per_net": 16},
        "vae": {"kind": "conv5", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 1, "iw_k": 4, "iw_max_kernels": 4, "seed": 3},
        **extra,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _shipped_cards() -> list[PriorCard]:
    weights = sorted(Path(constants.embedded_registry()).glob("*/*/model.safetensors"))
    assert len(weights) >= 10
    return [card_from_weights_file(p) for p in weights]


# -- the card ----------------------------------------------------------------------------------------------------
def test_the_hub_licence_list_covers_the_loopback_hubs() -> None:
    from hub_server import HUB_LICENSES as LOOPBACK

    assert LOOPBACK <= HUB_LICENSES
    assert {"apache-2.0", "mit", "cc-by-4.0", "cc-by-sa-3.0", "bsd-2-clause", "gpl-3.0", "other"} <= HUB_LICENSES
    assert canonical_license("MIT") == canonical_license(" mit") == DEFAULT_LICENSE == "MIT"
    assert canonical_license("Apache-2.0") == "apache-2.0"


def test_shipped_cards_are_unchanged_by_the_new_fields() -> None:
    """Cards written before the licence fields parse, default to MIT, and serialise without the new keys (so
    their JSON, and what hashes it, is what it was)."""
    old = 0
    for card in _shipped_cards():
        if card.data_licenses:  # a version written since the fields exist (notmnist-*@2.0.0) records its data's
            assert card.license == "MIT" and {d.dataset for d in card.data_licenses} == {card.source.domain}
            continue
        old += 1
        assert (card.license, card.license_name, card.license_link, card.data_licenses) == ("MIT", None, None, [])
        assert not set(_NEW_KEYS) & set(card.to_dict())
    assert old >= 10


def test_licence_and_data_licences_round_trip_through_the_card_json() -> None:
    base = _shipped_cards()[0]
    dl = [DataLicense("mnist", "CC BY-SA 3.0", "https://example.org/mnist/"), DataLicense("x", "unknown")]
    card = dataclasses.replace(base, license="other", license_name="My Licence", license_link="https://example.org/l",
                               data_licenses=dl)
    d = json.loads(card.to_json())
    assert d["license"] == "other" and d["license_name"] == "My Licence" and d["data_licenses"][1] == {
        "dataset": "x", "license": "unknown", "source_url": ""}
    again = PriorCard.from_json(card.to_json())
    assert again == card and again.data_licenses == dl


@pytest.mark.parametrize(("change", "match"), [
    ({"license": "my-own-licence"}, "not a Hub licence identifier"),
    ({"license": "other"}, "needs a licence name"),
    ({"license_name": "X"}, "goes with licence 'other' only"),
    ({"license": "other", "license_name": ""}, "one line of text"),
    ({"license": "other", "license_name": "a\nb"}, "one line of text"),
    ({"data_licenses": {"dataset": "x"}}, "data_licenses"),
    ({"data_licenses": [{"dataset": "x"}]}, "missing required field card.data_licenses\\[0\\].license"),
    ({"data_licenses": [{"dataset": "x", "license": 3}]}, "card.data_licenses\\[0\\].license"),
    ({"data_licenses": [{"dataset": "x", "license": "y", "extra": 1}]}, "Unknown card field"),
])
def test_bad_licences_in_a_card_are_refused(change: dict[str, Any], match: str) -> None:
    d = json.loads(_shipped_cards()[0].to_json())
    d.update(change)
    with pytest.raises(CardError, match=match):
        PriorCard.from_dict(d)


def test_check_license() -> None:
    check_license("other", "Research only", "https://example.org/licence")
    check_license("apache-2.0")
    with pytest.raises(CardError, match="apache-2.0"):  # the message lists the valid ids
        check_license("apache 2")
    with pytest.raises(CardError) as info:
        check_license("other")
    assert info.value.field == "card.license_name"


# -- recipes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "key"), [
    ({"license": "my-own-licence"}, "license"), ({"license": "other"}, "license_name"),
    ({"license": 3}, "license"), ({"license_name": "X"}, "license_name"),
    ({"license": "other", "license_name": "X", "license_link": ["a"]}, "license_link"),
])
def test_recipe_licence_is_validated(tmp_path: Path, extra: dict[str, Any], key: str) -> None:
    data = yaml.safe_load(_recipe(tmp_path, [], **extra).read_text())
    with pytest.raises(RecipeError) as info:
        parse_recipe(data)
    assert info.value.key == key


def test_shipped_recipes_keep_the_default_licence() -> None:
    paths = sorted((Path(__file__).parents[1] / "tools" / "recipes").glob("*.yaml"))
    assert len(paths) >= 8  # the glob found the recipes (an empty loop checks nothing)
    for path in paths:
        r = load_recipe(path)
        assert (r.license, r.license_name, r.license_link) == (DEFAULT_LICENSE, None, None)


def test_recipe_licence_reaches_the_card_the_readme_and_recipe_yaml(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, _sources(tmp_path / "ck"), license="Apache-2.0"))
    assert recipe.license == "apache-2.0"
    dest = build(recipe, tmp_path / "reg", tmp_path / "work", progress=False)
    card = card_from_weights_file(dest / "model.safetensors")
    assert (card.license, card.license_name, card.license_link) == ("apache-2.0", None, None)
    readme = (dest / "README.md").read_text()
    front = _front(readme)
    assert front["license"] == "apache-2.0" and "license_name" not in front
    assert "## Licences" in readme and "The weights of this prior: `apache-2.0`." in readme
    assert load_recipe(dest / "recipe.yaml").license == "apache-2.0"  # the recipe rebuilds the licence
    # The domain is a dataset dwp-hub knows: its licence is recorded (these checkpoints are not known ones).
    assert card.data_licenses == [DataLicense("notmnist", "see http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html",
                                              "https://github.com/davidflanagan/notMNIST-to-MNIST/raw/master/")]
    assert "| notmnist | see http://yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html |" in readme


def test_cli_build_license_overrides_the_recipe(tmp_path: Path, hub_server: HubTestServer) -> None:
    from hub_server import validate_card_metadata
    from huggingface_hub import ModelCard

    path = _recipe(tmp_path, _sources(tmp_path / "ck"), license="apache-2.0")
    res = runner.invoke(app, ["build", str(path), "--to", str(tmp_path / "reg"), "--work-dir", str(tmp_path / "w"),
                              "-q", "--license", "other", "--license-name", "Research only",
                              "--license-link", "https://example.org/licence"])
    assert res.exit_code == 0, res.output
    dest = tmp_path / "reg" / "tiny-lic" / "0.1.0"
    card = card_from_weights_file(dest / "model.safetensors")
    assert (card.license, card.license_name, card.license_link) == ("other", "Research only",
                                                                    "https://example.org/licence")
    front = _front((dest / "README.md").read_text())
    assert (front["license"], front["license_name"], front["license_link"]) == (
        "other", "Research only", "https://example.org/licence")
    assert "[Research only](https://example.org/licence)" in (dest / "README.md").read_text()
    ModelCard((dest / "README.md").read_text()).validate()  # the built card passes the loopback Hub's check
    assert validate_card_metadata((dest / "README.md").read_text()) == []
    again = load_recipe(dest / "recipe.yaml")  # recipe.yaml and the card's recipe say what was built
    assert (again.license, again.license_name, again.license_link) == ("other", "Research only",
                                                                       "https://example.org/licence")
    assert card.recipe["license"] == "other" and card.recipe["rebuild"] == "dwp-hub build recipe.yaml --to DIR"
    assert yaml.safe_load(path.read_text())["license"] == "apache-2.0"  # the recipe file itself is untouched


@pytest.mark.parametrize(("args", "needle"), [
    (["--license", "my-own-licence"], "apache-2.0"),
    (["--license", "other"], "licence name"),
    (["--license-link", "https://example.org"], "'other' only"),
])
def test_cli_build_bad_licence_is_a_usage_error(tmp_path: Path, args: list[str], needle: str) -> None:
    path = _recipe(tmp_path, [tmp_path / "absent.safetensors"])
    res = runner.invoke(app, ["build", str(path), "--to", str(tmp_path / "reg"), "-q", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "reg").exists()


# -- fit and publish ----------------------------------------------------------------------------------------------
def _kernels(tmp_path: Path) -> Path:
    spec = HarvestSpec("0.weight", 7, PruneRule("none"), held_out=(3,))
    out = tmp_path / "k.safetensors"
    harvest(_sources(tmp_path / "ck", dataset="mnist"), spec).save(out)
    return out


def test_fit_and_publish_licence_options(tmp_path: Path) -> None:
    kernels, fitted = _kernels(tmp_path), tmp_path / "fit"
    res = runner.invoke(app, ["fit", str(kernels), "--out", str(fitted), "--hidden", "4", "--epochs", "1", "--iw-k",
                              "2", "-q", "--license", "CC-BY-4.0"])
    assert res.exit_code == 0, res.output
    draft = card_from_weights_file(fitted / "model.safetensors")
    assert draft.license == "cc-by-4.0" and draft.recipe["license"] == "cc-by-4.0"
    assert yaml.safe_load((fitted / "recipe.yaml").read_text())["license"] == "cc-by-4.0"
    # The harvest recorded the source dataset's licence (the checkpoints say they were trained on MNIST).
    assert draft.data_licenses == [DataLicense("mnist", "CC BY-SA 3.0", "https://ossci-datasets.s3.amazonaws.com/mnist/")]
    assert "| mnist | CC BY-SA 3.0 | https://ossci-datasets.s3.amazonaws.com/mnist/ |" in (fitted / "README.md").read_text()

    reg = tmp_path / "reg"
    res = runner.invoke(app, ["publish", str(fitted), "--name", "lic", "--version", "1.0.0", "--to", str(reg)])
    assert res.exit_code == 0, res.output
    kept = card_from_weights_file(reg / "lic" / "1.0.0" / "model.safetensors")
    assert kept.license == "cc-by-4.0" and kept.data_licenses == draft.data_licenses  # no option: the card's

    res = runner.invoke(app, ["publish", str(fitted), "--name", "lic", "--version", "1.0.1", "--to", str(reg),
                              "--license", "other", "--license-name", "Research only"])
    assert res.exit_code == 0, res.output
    dest = reg / "lic" / "1.0.1"
    card = card_from_weights_file(dest / "model.safetensors")
    assert (card.license, card.license_name, card.license_link) == ("other", "Research only", None)
    assert card.data_licenses == draft.data_licenses
    front = _front((dest / "README.md").read_text())
    assert front["license"] == "other" and front["license_name"] == "Research only" and "license_link" not in front
    recipe = load_recipe(dest / "recipe.yaml")
    assert (recipe.license, recipe.license_name, recipe.version) == ("other", "Research only", "1.0.1")

    res = runner.invoke(app, ["publish", str(dest), "--name", "lic", "--version", "1.0.2", "--to", str(reg),
                              "--license", "mit"])  # back to the default: the recipe drops its licence keys
    assert res.exit_code == 0, res.output
    card = card_from_weights_file(reg / "lic" / "1.0.2" / "model.safetensors")
    assert (card.license, card.license_name) == ("MIT", None)
    assert not {"license", "license_name", "license_link"} & set(card.recipe)


def test_fit_without_licence_options_writes_the_default(tmp_path: Path) -> None:
    kernels, fitted = _kernels(tmp_path), tmp_path / "fit"
    res = runner.invoke(app, ["fit", str(kernels), "--out", str(fitted), "--hidden", "4", "--epochs", "1", "--iw-k",
                              "2", "-q"])
    assert res.exit_code == 0, res.output
    card = card_from_weights_file(fitted / "model.safetensors")
    assert card.license == "MIT" and "license" not in card.recipe
    assert _front((fitted / "README.md").read_text())["license"] == "mit"


@pytest.mark.parametrize(("command", "args", "needle"), [
    ("fit", ["--license", "gpl"], None),  # gpl is a Hub id: accepted (the run then fails on the missing file)
    ("fit", ["--license", "gnu"], "apache-2.0"),
    ("fit", ["--license", "other"], "licence name"),
    ("publish", ["--license", "nope"], "apache-2.0"),
    ("publish", ["--license", "other", "--license-link", "https://example.org"], "licence name"),
])
def test_fit_and_publish_bad_licence_is_a_usage_error(tmp_path: Path, command: str, args: list[str],
                                                      needle: str | None) -> None:
    target = ["fit", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path / "fit")] if command == "fit" else [
        "publish", str(tmp_path / "absent"), "--name", "x", "--version", "1.0.0", "--to", str(tmp_path / "reg")]
    res = runner.invoke(app, [*target, *args])
    if needle is None:
        assert res.exit_code == 1, res.output
        return
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def test_publish_name_without_other_on_a_default_card_is_a_usage_error(tiny_registry: Path, tmp_path: Path) -> None:
    folder = tiny_registry / "tiny-7x7" / "1.0.0"
    res = runner.invoke(app, ["publish", str(folder), "--name", "x", "--version", "1.0.0", "--to",
                              str(tmp_path / "reg"), "--license-name", "Mine"])
    assert res.exit_code == 2 and "'other' only" in res.output and not (tmp_path / "reg").exists()


def test_publish_in_python_takes_the_licence(tiny_registry: Path, tmp_path: Path) -> None:
    from dwp_hub.training.publish import publish

    folder = tiny_registry / "tiny-5x5" / "1.0.0"
    dest = publish(folder, "x", "2.0.0", tmp_path / "reg", license="bsd-3-clause").path
    assert card_from_weights_file(dest / "model.safetensors").license == "bsd-3-clause"
    with pytest.raises(CardError, match="licence name"):
        publish(folder, "x", "2.0.1", tmp_path / "reg", license="other")


# -- data licences --------------------------------------------------------------------------------------------
def test_data_licences_come_from_the_dataset_registry_and_known_checkpoints() -> None:
    from dwp_hub.data import CIFAR_DATASETS, DATASETS

    assert data_licenses("mnist-train", [])[0]["license"] == DATASETS["mnist-train"].license == "CC BY-SA 3.0"
    assert data_licenses("cifar100", []) == [{"dataset": "cifar100", "license": CIFAR_DATASETS["cifar100"].license,
                                              "source_url": CIFAR_DATASETS["cifar100"].url}]
    assert data_licenses("synthetic", [{"file": "a", "sha256": "0" * 64}]) == []
    known = [{"file": f"r{i}.th", "sha256": sha} for i, sha in enumerate(KNOWN_CHECKPOINTS)]
    got = data_licenses("cifar10", known)
    assert got[0]["dataset"] == "cifar10" and len(got) == 2  # the four ResNets: one entry
    assert got[1]["license"] == "BSD-2-Clause" and "akamaster/pytorch_resnet_cifar10" in got[1]["source_url"]


def test_harvest_of_the_real_cifar_resnets_records_their_licence(data_root: Path) -> None:
    paths = sorted((data_root / "checkpoints" / "cifar10-resnet").glob("resnet*.th"))
    if len(paths) != 4:
        pytest.skip("the CIFAR-10 ResNet checkpoints are not in DWP_HUB_DATA")
    data = harvest(paths, HarvestSpec("layer*.conv*.weight", 3, held_out=(3,), max_kernels_per_net=10),
                   domain="cifar10", network="ResNet")
    licences = data.meta["data_licenses"]
    assert [d["license"] for d in licences] == ["no explicit licence; free for research, cite the technical report",
                                                "BSD-2-Clause"]


def test_tiny_build_on_real_data_records_the_dataset_licence(tmp_path: Path, data_root: Path) -> None:
    recipe = parse_recipe({
        "name": "tiny-real-lic", "version": "0.0.1", "license": "cc-by-sa-4.0",
        "source": {"dataset": "notmnist", "net": {"arch": "fconv", "widths": [4, 4]}, "n_nets": 2, "epochs": 1},
        "harvest": {"layer": "0.weight", "kernel_size": 7, "held_out": [1], "min_kernels": 1},
        "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 1, "iw_k": 2, "iw_max_kernels": 2},
    })
    dest = build(recipe, tmp_path / "reg", tmp_path / "work", progress=False)
    card = card_from_weights_file(dest / "model.safetensors")
    assert card.license == "cc-by-sa-4.0"
    assert [d.dataset for d in card.data_licenses] == ["notmnist"]
    assert card.data_licenses[0].license.startswith("see http://yaroslavvb.blogspot.com")


# -- the Hub's metadata check -------------------------------------------------------------------------------------
@pytest.mark.parametrize("licence", [("apache-2.0", None, None), ("other", "Research only", "https://example.org/l"),
                                     ("cc-by-sa-3.0", None, None)])
def test_a_card_with_a_non_default_licence_passes_the_hub_check(licence: tuple[str, str | None, str | None],
                                                                hub_server: HubTestServer) -> None:
    from hub_server import validate_card_metadata
    from huggingface_hub import ModelCard

    from dwp_hub._render import render_readme

    card = dataclasses.replace(_shipped_cards()[0], license=licence[0], license_name=licence[1],
                               license_link=licence[2],
                               data_licenses=[DataLicense("mnist", "CC BY-SA 3.0", "https://example.org/m|x")])
    readme = render_readme(card)
    ModelCard(readme).validate()  # the loopback Hub's validate-yaml route; raises ValueError on a 400
    assert validate_card_metadata(readme) == []
    front = _front(readme)
    assert front["license"] == licence[0] and front.get("license_name") == licence[1]
    assert "| mnist | CC BY-SA 3.0 | https://example.org/m\\|x |" in readme  # a '|' does not break the table
    if licence[0] == "other":  # the check refuses 'other' without a name, as the Hub does
        assert validate_card_metadata(readme.replace("license_name: Research only\n", ""))
