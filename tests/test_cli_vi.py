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


@pytest.fixture()
def nets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """``paper_net`` replaced by a recorder that builds the standard-normal net (no prior is loaded)."""
    import dwp_hub.paper

    real = dwp_hub.paper.paper_net
    calls: list[tuple[str, dict[str, Any]]] = []

    def spy(prior: str, **kw: Any) -> torch.nn.Module:
        calls.append((prior, kw))
        return real("standard-normal", widths=kw["widths"], seed=kw["seed"])

    monkeypatch.setattr(dwp_hub.paper, "paper_net", spy)
    return calls


def test_every_option_reaches_the_net_and_the_fit(fits: list[dict[str, Any]], nets: list[Any],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub.paper import PAPER_DWP

    res = runner.invoke(app, ["vi", "--json"])
    assert res.exit_code == 0, res.output
    prior, kw = nets[-1]
    assert prior == "dwp" and kw["dwp_priors"] == dict(PAPER_DWP) and kw["bound"] == "fast"
    assert (kw["kernels_per_step"], kw["mc_samples"], kw["widths"], kw["seed"]) == (None, 1, (32, 128), 0)
    assert fits[-1]["progress"] is True and fits[-1]["device"] is None
    assert fits[-1]["metadata"] == {"protocol": "fake mnist protocol: 50 (seed 0)"}
    out = json.loads(res.stdout)  # the whole record, every field
    assert set(out) == {"prior", "n_train", "seed", "epochs", "precision", "steps", "resumed_from", "seconds",
                        "total_seconds", "ms_per_step", "acc_ensemble", "acc_mean", "nll_ensemble", "final", "layers",
                        "protocol"}
    assert (out["prior"], out["seed"], out["protocol"]) == ("dwp", 0, "fake mnist protocol: 50 (seed 0)")
    assert [row[:2] for row in out["layers"]] == [["0", [32, 1, 7, 7]], ["3", [128, 32, 5, 5]]]
    assert out["acc_ensemble"] == 0.5
    res = runner.invoke(app, ["vi", "--json", "--quiet", "--dwp", "5=tiny-5x5", "--dwp", " 3 = tiny-3x3 ",
                              "--bound", "full", "--kernels-per-step", "4", "--mc-samples", "3", "--device", "cpu",
                              "--seed", "6"])
    assert res.exit_code == 0, res.output
    prior, kw = nets[-1]
    assert kw["dwp_priors"] == {**PAPER_DWP, 5: "tiny-5x5", 3: "tiny-3x3"} and kw["bound"] == "full"
    assert (kw["kernels_per_step"], kw["mc_samples"], kw["seed"]) == (4, 3, 6)
    assert fits[-1]["progress"] is False and fits[-1]["device"] == "cpu"
    # the reverse direction (target notMNIST) uses the priors learned on MNIST
    assert runner.invoke(app, ["vi", "--json", "--target-data", "notmnist"]).exit_code == 0
    assert nets[-1][1]["dwp_priors"] == {k: v.replace("notmnist-", "mnist-", 1) for k, v in PAPER_DWP.items()}
    assert all(spec.startswith("mnist-") for spec in nets[-1][1]["dwp_priors"].values())
    for bad in ("5", "x=tiny-5x5", "5=", "=tiny-5x5"):
        res = runner.invoke(app, ["vi", "--json", "--dwp", bad])
        assert res.exit_code == 2 and "--dwp" in res.output, bad
    # the deterministic baseline is fitted by fit_deterministic, not by variational inference
    seen: list[int] = []
    monkeypatch.setattr(vi_module, "fit_deterministic", lambda model, x, *a, **kw: seen.append(len(x)) or
                        VIResult(model, "det", 1, 0, 0.01, 10.0, {"loss": 1.0}, {"acc_ensemble": 0.4, "acc_mean": 0.4}))
    n_vi = len(fits)
    res = runner.invoke(app, ["vi", "--prior", "deterministic", "--json", "--n-train", "20"])
    assert res.exit_code == 0 and seen == [20] and len(fits) == n_vi, res.output
    assert json.loads(res.stdout)["prior"] == "deterministic"


def test_threads_sets_torch_threads(fits: list[Any]) -> None:
    torch.set_num_threads(1)
    assert runner.invoke(app, [*SN, "--threads", "2"]).exit_code == 0
    assert torch.get_num_threads() == 2  # the one_thread fixture restores it
    assert runner.invoke(app, SN).exit_code == 0 and torch.get_num_threads() == 2  # 0: left as it is


def test_progress_is_silent_when_quiet_and_logs_lines_off_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """What --quiet turns off (progress_bar(enabled=False)), and the log lines written when stderr is not a
    terminal (nohup, CI): at most one per LOG_INTERVAL, and always the last one."""
    from dwp_hub import _progress

    with _progress.progress_bar(enabled=False) as bar:
        task = bar.add_task("vi", total=3)
        for _ in range(3):
            bar.update(task, advance=1, acc="acc 0.5")
    assert capsys.readouterr() == ("", "")
    clock = iter([100.0, 100.0, 101.0, 131.0, 132.0, 133.0])
    monkeypatch.setattr(_progress.time, "time", lambda: next(clock))
    monkeypatch.setattr(_progress.sys.stderr, "isatty", lambda: False)
    with _progress.progress_bar() as bar:
        task = bar.add_task("vi", total=4)  # starts at t=100
        for _ in range(4):  # updates at t=100 (first: logged), 101 (too soon), 131 (interval passed), 132 (done)
            bar.update(task, advance=1, acc="acc 0.5")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["vi: 1/4 (0 s) acc 0.5", "vi: 3/4 (31 s) acc 0.5", "vi: 4/4 (32 s) acc 0.5"], lines


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
