"""Layer balancing (dwp_hub.training.balance) and its harvest / recipe / CLI option."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from dwp_hub.cli import app
from dwp_hub.errors import CheckpointError, RecipeError
from dwp_hub.model.nets import NetConfig, build_net, xavier_init_
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.balance import balance_state, balanced_pairs
from dwp_hub.training.harvest import HarvestSpec, KernelDataset, PruneRule, harvest
from dwp_hub.training.recipe import parse_recipe


def _net(arch: str, widths: tuple[int, ...], seed: int = 0) -> tuple[torch.nn.Sequential, NetConfig]:
    config = NetConfig(arch, widths)
    gen = torch.Generator().manual_seed(seed)
    net = xavier_init_(build_net(config), gen)
    with torch.no_grad():  # unbalanced on purpose: first layer small and biased, like a short run
        convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
        convs[0].weight.mul_(0.3)
        for m in convs:
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
    return net, config


def _unit_norms(state: dict[str, torch.Tensor], a: str, b: str) -> tuple[torch.Tensor, torch.Tensor]:
    inc = (state[f"{a}.weight"].double().flatten(1) ** 2).sum(1) + state[f"{a}.bias"].double() ** 2
    out = (state[f"{b}.weight"].double().transpose(0, 1).flatten(1) ** 2).sum(1)
    return inc, out


def _penalty(state: dict[str, torch.Tensor], layers: list[str]) -> float:
    return sum(float((state[f"{n}.{p}"].double() ** 2).sum()) for n in layers for p in ("weight", "bias"))


@pytest.mark.parametrize(("arch", "widths", "side", "pairs"), [
    ("fconv", (8, 6), 28, [("0", "3")]),
    ("fconv3", (4, 6, 5), 28, [("0", "3"), ("3", "6")]),
    ("cifar", (6, 5, 4, 7), 32, [("0", "3"), ("3", "5")]),
])
def test_balancing_keeps_the_function_and_equalises_every_unit(arch: str, widths: tuple[int, ...], side: int,
                                                               pairs: list[tuple[str, str]]) -> None:
    net, _ = _net(arch, widths)
    assert balanced_pairs(net) == pairs
    state = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(5, net[0].in_channels, side, side, generator=torch.Generator().manual_seed(1))
    before = net(x)
    new, report = balance_state(state, net)
    net.load_state_dict(new)
    torch.testing.assert_close(net(x), before, rtol=1e-4, atol=1e-5)
    for a, b in pairs:
        inc, out = _unit_norms(new, a, b)
        torch.testing.assert_close(inc, out, rtol=1e-4, atol=1e-8)
    layers = sorted({n for p in pairs for n in p}, key=int)
    assert report.penalty_after == pytest.approx(_penalty(new, layers), rel=1e-5)
    assert report.penalty_after < report.penalty_before == pytest.approx(_penalty(state, layers), rel=1e-6)
    assert report.pairs == tuple(pairs) and report.max_imbalance < 1e-5
    assert all(new[k].dtype == state[k].dtype for k in state)


def test_balanced_point_is_the_minimum_of_the_l2_term() -> None:
    net, _ = _net("fconv", (8, 6))
    new, report = balance_state(net.state_dict(), net)
    for s in (0.9, 1.1):  # moving any one unit off the balanced point costs L2
        moved = dict(new)
        moved["0.weight"] = new["0.weight"].clone()
        moved["0.weight"][2] *= s
        moved["0.bias"] = new["0.bias"].clone()
        moved["0.bias"][2] *= s
        moved["3.weight"] = new["3.weight"].clone()
        moved["3.weight"][:, 2] /= s
        assert _penalty(moved, ["0", "3"]) > report.penalty_after


def test_dead_units_are_left_alone_and_idempotent() -> None:
    net, _ = _net("fconv", (8, 6))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["3.weight"][:, 4] = 0.0  # a unit whose output nothing reads
    new, _ = balance_state(state, net)
    torch.testing.assert_close(new["0.weight"][4], state["0.weight"][4])
    again, report = balance_state(new, net)
    torch.testing.assert_close(again["0.weight"], new["0.weight"], rtol=1e-6, atol=1e-7)
    assert report.sweeps <= 2 and report.penalty_after == pytest.approx(report.penalty_before, rel=1e-6)


def test_balancing_refuses_what_it_cannot_do() -> None:
    net, _ = _net("fconv", (8, 6))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CheckpointError, match="did not converge in 1 sweeps"):
        balance_state(state, net, max_sweeps=1)
    no_bias = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(CheckpointError, match="0.bias is missing"):
        balance_state(no_bias, net)
    state["3.weight"] = state["3.weight"][:, :4]
    with pytest.raises(CheckpointError, match="does not match its recorded net"):
        balance_state(state, net)
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3),
                             torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 1, groups=2), torch.nn.ReLU(), torch.nn.Conv2d(2, 3, 1))
    assert balanced_pairs(bn) == []  # batch norm in between; a grouped conv on either side
    mlp = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Tanh(), torch.nn.Conv2d(4, 2, 3))
    assert balanced_pairs(mlp) == []  # tanh is not positively homogeneous
    with pytest.raises(CheckpointError, match="drop harvest.balance"):
        balance_state(mlp.state_dict(), mlp)


def _sources(folder: Path, n: int = 3) -> list[Path]:
    paths = []
    for i in range(n):
        net, config = _net("fconv", (8, 6), seed=i)
        meta = {"recipe": {"dataset": "notmnist", "net": config.to_dict(), "n_nets": n}, "index": i,
                "val_accuracy": 0.5, "dataset_sha256": "ab" * 32, "split": "test"}
        path = folder / f"notmnist-fconv-{i:03d}.safetensors"
        save_checkpoint(path, net.state_dict(), meta)
        paths.append(path)
    return paths


def test_harvest_balance_scales_kernels_and_records_it(tmp_path: Path) -> None:
    paths = _sources(tmp_path)
    plain = harvest(paths, HarvestSpec("0.weight", 7, PruneRule("none"), held_out=(2,)))
    bal = harvest(paths, HarvestSpec("0.weight", 7, PruneRule("none"), held_out=(2,), balance=True))
    assert "balance" not in plain.meta and "balance" not in plain.meta["recipe"]["harvest"]
    assert bal.meta["recipe"]["harvest"]["balance"] is True
    assert bal.meta["balance"]["pairs"] == [["0", "3"]]
    assert bal.meta["balance"]["l2_term_after"] < bal.meta["balance"]["l2_term_before"]
    ratio = bal.train.flatten(1).norm(dim=1) / plain.train.flatten(1).norm(dim=1)
    assert ratio.median() > 1.2  # the first layer was made small: balancing scales it up
    # each kernel is its own kernel rescaled: directions unchanged
    cos = torch.nn.functional.cosine_similarity(bal.train.flatten(1), plain.train.flatten(1))
    torch.testing.assert_close(cos, torch.ones_like(cos))
    # the second layer's kernels: the slice reading input channel c is divided by the factor kernel c grew by
    grow = (harvest(paths, HarvestSpec("0.weight", 7, PruneRule("none"), balance=True)).train.flatten(1).norm(dim=1)
            / harvest(paths, HarvestSpec("0.weight", 7, PruneRule("none"))).train.flatten(1).norm(dim=1)).view(3, 1, 8)
    plain5 = harvest(paths, HarvestSpec("3.weight", 5, PruneRule("none")))
    bal5 = harvest(paths, HarvestSpec("3.weight", 5, PruneRule("none"), balance=True))
    shrink = (plain5.train.flatten(1).norm(dim=1) / bal5.train.flatten(1).norm(dim=1)).view(3, 6, 8)
    torch.testing.assert_close(shrink, grow.expand_as(shrink), rtol=1e-4, atol=1e-6)


def test_harvest_balance_needs_a_recorded_net(tmp_path: Path) -> None:
    net, _ = _net("fconv", (8, 6))
    path = tmp_path / "third-party.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(CheckpointError, match="does not record its network"):
        harvest([path], HarvestSpec("0.weight", 7, PruneRule("none"), balance=True))


def _recipe(harvest_section: dict) -> dict:
    return {"name": "t-7x7", "version": "1.0.0", "source": {"dataset": "notmnist", "net": {"arch": "fconv",
            "widths": [8, 6]}, "n_nets": 2}, "harvest": harvest_section, "vae": {"kind": "conv7", "z_dim": 2, "hidden": 8}}


def test_recipe_balance_key() -> None:
    r = parse_recipe(_recipe({"layer": "0.weight", "kernel_size": 7, "balance": True}))
    assert r.harvest.balance is True
    assert parse_recipe(_recipe({"layer": "0.weight", "kernel_size": 7})).harvest.balance is False
    with pytest.raises(RecipeError, match="harvest.balance' must be true or false") as err:
        parse_recipe(_recipe({"layer": "0.weight", "kernel_size": 7, "balance": "yes"}))
    assert err.value.key == "harvest.balance"


def test_build_with_balance_round_trips_through_the_card(tmp_path: Path) -> None:
    from dwp_hub.card import card_from_weights_file
    from dwp_hub.training.recipe import build, load_recipe

    paths = _sources(tmp_path, n=6)
    recipe = {"name": "tiny-bal", "version": "0.1.0", "description": "tiny",
              "source": {"checkpoints": [str(p) for p in paths], "domain": "notmnist", "network": "fconv(8,6)"},
              "harvest": {"layer": "0.weight", "kernel_size": 7, "prune": {"rule": "none", "value": 0.0},
                          "held_out": [5], "balance": True},
              "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4},
              "fit": {"epochs": 2, "iw_k": 8, "iw_max_kernels": 8, "seed": 3}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    folder = build(load_recipe(path), tmp_path / "reg", tmp_path / "work", progress=False)
    card = card_from_weights_file(folder / "model.safetensors")
    assert card.recipe["harvest"]["balance"] is True
    again = parse_recipe(yaml.safe_load((folder / "recipe.yaml").read_text()))
    assert again.harvest.balance is True


def test_cli_harvest_balance(tmp_path: Path) -> None:
    paths = _sources(tmp_path)
    out = tmp_path / "k.safetensors"
    res = CliRunner().invoke(app, ["harvest", *map(str, paths), "--layer", "0.weight", "-k", "7", "--balance",
                                   "--held-out", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "nets balanced first" in res.output
    data = KernelDataset.load(out)
    assert data.meta["recipe"]["harvest"]["balance"] is True
    assert yaml.safe_dump(data.meta["balance"])  # plain data, renderable in a card
