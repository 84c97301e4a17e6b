"""``dwp-hub vi`` (dwp_hub/cli/_vi.py): the shared training options reach VIRecipe, the old spellings ``-n`` /
``--dataset`` still work, ``--precision`` (bf16 refused where it is not native, a usage error), and the
checkpoint error's remedy spelled for each reader (``resume=False`` in Python, ``--no-resume`` on the CLI)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dwp_hub import errors as E
from dwp_hub.cli import _options, app
from dwp_hub.data import Split
from dwp_hub.inference import vi as vi_module
from dwp_hub.inference.vi import VIRecipe, VIResult

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def _split(n: int, seed: int, dataset: str = "mnist", **_: Any) -> Split:
    g = np.random.default_rng(seed)
    x = g.random((n + 20, 1, 28, 28), dtype=np.float32)
    y = np.arange(n + 20) % 10
    return Split(x[:n], y[:n], x[n:], y[n:], f"fake {dataset} protocol: {n} (seed {seed})")


@pytest.fixture()
def fake_data(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    """``mnist10k_protocol`` replaced by random images; returns the (n_train, seed, dataset) it was asked for."""
    import dwp_hub.data

    asked: list[tuple[int, int, str]] = []

    def fake(n: int, seed: int, root: Any = None, *, protocol: str = "test", dataset: str = "mnist") -> Split:
        asked.append((n, seed, dataset))
        return _split(n, seed, dataset)

    monkeypatch.setattr(dwp_hub.data, "mnist10k_protocol", fake)
    return asked


@pytest.fixture()
def fits(monkeypatch: pytest.MonkeyPatch, fake_data: list[Any]) -> list[dict[str, Any]]:
    """``fit_vi`` replaced by a recorder (no training); returns what each call got."""
    calls: list[dict[str, Any]] = []

    def fake_fit(model: torch.nn.Module, x: Any, y: Any, recipe: VIRecipe, **kw: Any) -> VIResult:
        calls.append({"model": model, "n": len(x), "recipe": recipe, **kw})
        return VIResult(model, "vi", 1, 0, 0.01, 10.0, {"loss": 1.0},
                        {"acc_ensemble": 0.5, "acc_mean": 0.5, "nll_ensemble": 1.0})

    monkeypatch.setattr(vi_module, "fit_vi", fake_fit)
    return calls


SN = ["vi", "--prior", "standard-normal", "--json", "--quiet"]


def _conv_widths(model: torch.nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if hasattr(m, "out_channels")]


def test_defaults_are_the_recipes_and_given_options_reach_it(fits: list[dict[str, Any]],
                                                            fake_data: list[Any]) -> None:
    res = runner.invoke(app, SN)
    assert res.exit_code == 0, res.output
    assert fits[-1]["recipe"] == VIRecipe(seed=0, eval_mc=10) and fake_data[-1] == (50, 0, "mnist")
    assert _conv_widths(fits[-1]["model"]) == [32, 128] and fits[-1]["resume"] is True
    out = json.loads(res.stdout)
    assert (out["epochs"], out["precision"], out["n_train"]) == (10_000, "fp32", 50)
    res = runner.invoke(app, [*SN, "--epochs", "3", "--lr", "0.01", "--batch-size", "16", "--l2", "0.1",
                              "--widths", "4,8", "--seed", "2", "--n-train", "20", "--target-data", "notmnist"])
    assert res.exit_code == 0, res.output
    assert fits[-1]["recipe"] == VIRecipe(epochs=3, lr=0.01, batch_size=16, l2=0.1, seed=2, eval_mc=10)
    assert _conv_widths(fits[-1]["model"]) == [4, 8] and fake_data[-1] == (20, 2, "notmnist")


@pytest.mark.parametrize(("args", "flag"), [(["--lr", "0"], "--lr"), (["--l2", "-1"], "--l2"),
                                            (["--widths", "4"], "--widths"), (["--widths", "0,8"], "--widths"),
                                            (["--target-data", "cifar10"], "--target-data"),
                                            (["--device", "tpu"], "--device")])  # the shared DeviceOpt
def test_bad_values_are_usage_errors_naming_the_flag(fits: list[Any], args: list[str], flag: str) -> None:
    res = runner.invoke(app, [*SN, *args])
    assert res.exit_code == 2 and flag in res.output and not fits, res.output


def test_the_old_spellings_still_work(fits: list[dict[str, Any]], fake_data: list[Any]) -> None:
    res = runner.invoke(app, [*SN, "-n", "20", "--dataset", "notmnist"])
    assert res.exit_code == 0, res.output
    old = json.loads(res.stdout)
    res = runner.invoke(app, [*SN, "--n-train", "20", "--target-data", "notmnist"])
    assert json.loads(res.stdout) == old and fake_data == [(20, 0, "notmnist")] * 2
    assert runner.invoke(app, [*SN, "-n", "20", "--n-train", "20"]).exit_code == 0  # the same value twice
    res = runner.invoke(app, [*SN, "-n", "20", "--n-train", "30"])
    assert res.exit_code == 2 and "old spelling of --n-train" in " ".join(res.output.split())
    res = runner.invoke(app, [*SN, "--dataset", "notmnist", "--target-data", "mnist"])
    assert res.exit_code == 2 and "old spelling of --target-data" in " ".join(res.output.split())


def test_precision_choices_are_the_librarys() -> None:
    from dwp_hub.inference import Precision

    assert [p.value for p in _options.VIPrecision] == [p.value for p in Precision]
    res = runner.invoke(app, ["vi", "--precision", "fp16"])
    assert res.exit_code == 2 and "'fp32', 'bf16'" in " ".join(res.output.split())


def test_bf16_is_a_usage_error_where_it_is_not_native(fits: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vi_module, "bf16_supported", lambda device="cpu": False)
    res = runner.invoke(app, [*SN, "--precision", "bf16"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "native bfloat16 on cpu" in text and "--precision fp32" in text, text
    assert not fits and "Traceback" not in res.output


def test_bf16_reaches_the_recipe_where_it_is_native(fits: list[dict[str, Any]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vi_module, "bf16_supported", lambda device="cpu": True)
    res = runner.invoke(app, [*SN, "--precision", "bf16"])
    assert res.exit_code == 0, res.output
    assert fits[-1]["recipe"].precision == "bf16" and json.loads(res.stdout)["precision"] == "bf16"


# -- the checkpoint error's remedy: resume=False in Python, --no-resume on the command line ---------------------
def test_a_remedy_is_a_field_spelled_by_each_front_end(capsys: pytest.CaptureFixture[str]) -> None:
    from dwp_hub.cli._errors import REMEDY_FLAGS, report

    err = E.CheckpointError("x.safetensors was written by a different run.", remedy=E.Remedy("resume", False),
                            hint="Delete it, pass another path, or {remedy}.")
    assert str(err) == "x.safetensors was written by a different run. Delete it, pass another path, or resume=False."
    assert err.reason == "x.safetensors was written by a different run." and err.remedy == E.Remedy("resume", False)
    assert report(err) == 1
    shown = " ".join(capsys.readouterr().err.split())
    assert shown.endswith("Delete it, pass another path, or --no-resume.") and "resume=False" not in shown
    plain = E.DwpHubError("Nothing to offer.")
    assert str(plain) == plain.reason == "Nothing to offer." and plain.remedy is None
    unknown = E.TrainingError("Diverged.", remedy=E.Remedy("lr", 1e-4))  # no CLI flag: the Python spelling
    assert str(unknown) == "Diverged. Pass lr=0.0001." and report(unknown) == 1
    assert "Pass lr=0.0001." in capsys.readouterr().err
    import typer

    group = typer.main.get_command(app)  # every flag the table names is an option of some command
    options = {o for c in group.commands.values() for p in c.params for o in p.opts + p.secondary_opts}
    assert set(REMEDY_FLAGS.values()) <= options


def test_a_checkpoint_of_another_run_names_the_remedy_for_each_reader(fake_data: list[Any], tmp_path: Path) -> None:
    ck = tmp_path / "run.safetensors"
    args = [*SN, "--n-train", "20", "--widths", "2,4", "--eval-mc", "1", "--checkpoint", str(ck)]
    assert runner.invoke(app, [*args, "--epochs", "1"]).exit_code == 0 and ck.exists()
    res = runner.invoke(app, [*args, "--epochs", "2"])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 1 and "different run" in err and err.endswith("or --no-resume."), err
    assert "resume=False" not in err and "Traceback" not in res.output
    res = runner.invoke(app, [*args, "--epochs", "2", "--no-resume"])
    assert res.exit_code == 0 and json.loads(res.stdout)["resumed_from"] == 0
    from dwp_hub.paper import paper_net

    split = _split(20, 0)
    with pytest.raises(E.CheckpointError, match=r"resume=False\.$") as info:
        vi_module.fit_vi(paper_net("standard-normal", widths=(2, 4)), split.x_train, split.y_train,
                         VIRecipe(epochs=3), checkpoint=ck, progress=False)
    assert info.value.remedy == E.Remedy("resume", False)
