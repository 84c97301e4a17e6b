"""Training and evaluation by variational inference (dwp_hub/inference/vi.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from dwp_hub.errors import CheckpointError, TrainingError
from dwp_hub.inference import (
    VIRecipe,
    bayesian_layers,
    evaluate,
    fit_deterministic,
    fit_vi,
    kl_divergence,
    load_checkpoint,
    mean_weights,
    paper_net,
    save_checkpoint,
    set_stochastic,
)
from dwp_hub.inference.vi import read_checkpoint
from helpers import tiny_data

_LOG_2PI = math.log(2 * math.pi)


pytestmark = pytest.mark.usefixtures("one_thread")




def test_fit_vi_learns_and_evaluates(tiny_registry: Path) -> None:
    x, y = tiny_data(20)
    model = paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(4, 8), kernels_per_step=8)
    recipe = VIRecipe(epochs=40, lr=1e-2, eval_mc=3, checkpoint_every=1)
    result = fit_vi(model, x, y, recipe, x_eval=x, y_eval=y, progress=False)
    assert result.steps == 40 and result.objective == "vi" and len(result.history) == 40
    assert set(result.metrics) == {"acc_ensemble", "acc_mean", "nll_ensemble"}
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"] and last["data"] < first["data"]
    assert result.final["loss"] == pytest.approx(result.final["data"] + result.final["kl"], rel=1e-4)
    det = fit_deterministic(paper_net("deterministic", widths=(4, 8)), x, y, VIRecipe(epochs=40, lr=1e-2),
                            x_eval=x, y_eval=y, progress=False)
    assert det.objective == "deterministic" and "l2" in det.final
    assert det.metrics["acc_ensemble"] == det.metrics["acc_mean"]


def test_fit_vi_objective_is_n_times_ce_plus_weighted_kl() -> None:
    """One full-batch step of the means (no noise): data = N · mean CE of the batch, loss = data + kl_weight · KL."""
    x, y = tiny_data(20)
    model = set_stochastic(paper_net("standard-normal", widths=(2, 4)), False)
    with torch.no_grad():
        ce = float(nn.functional.cross_entropy(model(x), y))
        kl = float(kl_divergence(model))
    res = fit_vi(model, x, y, VIRecipe(epochs=1, lr=1e-2, kl_weight=0.5), progress=False)
    assert res.final["data"] == pytest.approx(20 * ce, rel=1e-5)  # n_train = 20 scales the batch mean
    assert res.final["kl"] == pytest.approx(kl, rel=1e-5)  # the closed-form KL before the step
    assert res.final["loss"] == pytest.approx(res.final["data"] + 0.5 * res.final["kl"], rel=1e-5)
    assert abs(res.final["loss"] - res.final["data"] - res.final["kl"]) > 1.0  # the weight 0.5 is used


def test_fit_vi_learning_rate_decays_linearly_to_zero(tmp_path: Path) -> None:
    """Step s (0-based) of T runs at lr · (1 − s/T); the checkpoint keeps the optimiser's last lr."""
    x, y = tiny_data(20)  # N = 20 <= batch 256: one step per epoch, T = 3
    ck, seen = tmp_path / "lr.safetensors", []

    def read_lr(step: int, record: dict[str, float]) -> None:
        if ck.exists():  # the checkpoint of the step before (records come before the checkpoint is written)
            seen.append(read_checkpoint(ck)[1]["optimizer"]["param_groups"][0]["lr"])

    recipe = VIRecipe(epochs=3, lr=1e-2, checkpoint_every=1)
    fit_vi(paper_net("standard-normal", widths=(2, 4)), x, y, recipe, checkpoint=ck, progress=False,
           callback=read_lr)
    final_lr = read_checkpoint(ck)[1]["optimizer"]["param_groups"][0]["lr"]
    assert seen == pytest.approx([1e-2, 1e-2 * 2 / 3])  # steps 0 and 1
    assert final_lr == pytest.approx(1e-2 / 3)  # step 2 = T - 1


def test_fit_deterministic_l2_term_regularises() -> None:
    x, y = tiny_data(20)

    def run(l2: float) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        res = fit_deterministic(paper_net("deterministic", widths=(2, 4)), x, y,
                                VIRecipe(epochs=3, lr=1e-2, l2=l2, seed=1), progress=False)
        return res.model.state_dict(), res.final

    (plain, f0), (again, _), (reg, f1) = run(0.0), run(0.0), run(1.0)
    assert all(torch.equal(plain[k], again[k]) for k in plain)  # same seed: the same run
    assert f1["loss"] == pytest.approx(f1["data"] + 1.0 * f1["l2"], rel=1e-5) and f1["l2"] > 0.1
    assert f0["loss"] == pytest.approx(f0["data"], rel=1e-6)
    conv = [k for k in plain if k.endswith("weight") and plain[k].ndim == 4]
    assert conv and all(not torch.allclose(plain[k], reg[k]) for k in conv)  # l2 > 0 changes the conv weights


def test_set_stochastic_switches_between_sampling_and_the_means() -> None:
    model = paper_net("standard-normal", widths=(2, 4))
    x, _ = tiny_data(8)
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # stochastic by default: each pass samples
        assert set_stochastic(model, False) is model
        out = model(x)
        assert torch.equal(out, model(x))
        with mean_weights(model):
            assert torch.equal(out, model(x))
        set_stochastic(model, True)
        assert not torch.equal(model(x), model(x))


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tiny_registry: Path, tmp_path: Path) -> None:
    x, y = tiny_data(30)
    recipe = VIRecipe(epochs=6, batch_size=16, lr=1e-2, checkpoint_every=4, seed=3)  # 2 steps per epoch

    def build() -> nn.Module:
        return paper_net("dwp", dwp_priors={7: "tiny-7x7", 5: "tiny-5x5"}, widths=(2, 4), kernels_per_step=3)

    first = fit_vi(build(), x, y, recipe, checkpoint=tmp_path / "a.safetensors", progress=False)
    assert first.total_seconds == first.seconds > 0  # a fresh run: all its time is this call's
    straight = first.model

    def crash(step: int, record: dict[str, float]) -> None:
        if step == 8:  # records are made every checkpoint_every steps, before the checkpoint is written
            raise KeyboardInterrupt

    ck = tmp_path / "b.safetensors"
    with pytest.raises(KeyboardInterrupt):
        fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False, callback=crash)
    legacy = tmp_path / "legacy.safetensors"  # the same checkpoint as written before it recorded training time
    model = build()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    meta = load_checkpoint(ck, model, opt)
    assert meta["seconds"] > 0
    save_checkpoint(legacy, model, opt, {k: v for k, v in meta.items() if k not in ("seconds", "extra")},
                    extra=meta["extra"])
    resumed = fit_vi(build(), x, y, recipe, checkpoint=ck, progress=False)
    assert resumed.resumed_from == 4 and resumed.steps == 12
    # the training time of all 12 steps: the 4 before the crash, recorded in the checkpoint, and the 8 after
    assert resumed.total_seconds == pytest.approx(meta["seconds"] + resumed.seconds)
    assert fit_vi(build(), x, y, recipe, checkpoint=legacy, progress=False).total_seconds is None
    a, b = straight.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(CheckpointError, match="different run"):
        fit_vi(build(), x, y, VIRecipe(epochs=7, batch_size=16), checkpoint=ck, progress=False)
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        fit_vi(build(), x, y, recipe, checkpoint=tmp_path / "bad.safetensors", progress=False)


def test_training_errors_name_step_and_term() -> None:
    x, y = tiny_data(10)
    model = paper_net("standard-normal", widths=(2, 4))
    with pytest.raises(TrainingError, match="empty"):
        fit_vi(model, x[:0], y[:0], VIRecipe(epochs=1), progress=False)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"Step 0 \(epoch 0\): the data term"):
        fit_vi(model, bad, y, VIRecipe(epochs=1), progress=False)
    with torch.no_grad():  # sigma^2 = 0: the data term stays finite, the KL (-log sigma^2) does not
        model[3].log_sigma2[0, 0, 0, 0] = float("-inf")
    with pytest.raises(TrainingError, match=r"Step 0 .*KL term of layer '3'"):
        fit_vi(model, x, y, VIRecipe(epochs=1), progress=False)
    with pytest.raises(TrainingError, match="to_bayesian"):
        fit_vi(paper_net("deterministic", widths=(2, 4)), x, y, VIRecipe(epochs=1), progress=False)
    with pytest.raises(TrainingError, match="plain network"):
        fit_deterministic(paper_net("log-uniform", widths=(2, 4)), x, y, VIRecipe(epochs=1), progress=False)


def test_evaluate_ensemble_differs_from_mean_weights() -> None:
    model = paper_net("standard-normal", widths=(2, 4))
    for _, layer in bayesian_layers(model):
        with torch.no_grad():
            layer.log_sigma2.fill_(0.0)
    x, y = tiny_data(40)
    m = evaluate(model, x, y, mc=4)
    assert all(layer.stochastic for _, layer in bayesian_layers(model))  # modes restored
    model.eval()
    with torch.no_grad(), mean_weights(model):
        logits = model(x)
    assert m["acc_mean"] == pytest.approx(float((logits.argmax(1) == y).float().mean()))  # one pass, mean weights
    nll_mean = float(nn.functional.cross_entropy(logits, y))
    assert abs(m["nll_ensemble"] - nll_mean) > 0.05  # sigma = 1: the ensemble is not the mean-weights net
    torch.manual_seed(0)
    again = evaluate(model, x, y, mc=4)
    torch.manual_seed(1)
    assert evaluate(model, x, y, mc=4)["nll_ensemble"] != again["nll_ensemble"]  # the passes sample


def test_cli_vi_smoke(tiny_registry: Path, data_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dwp_hub.cli import app

    ck = tmp_path / "run.safetensors"
    args = ["vi", "--prior", "dwp", "-n", "20", "--epochs", "2", "--dwp", "7=tiny-7x7", "--dwp", "5=tiny-5x5",
            "--widths", "4,8", "--eval-mc", "2", "--checkpoint", str(ck), "--json", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert '"acc_ensemble"' in res.output and ck.exists()
    res = CliRunner().invoke(app, ["vi", "--dwp", "5", "--epochs", "1"])
    assert res.exit_code != 0 and "KERNEL_SIZE=SPEC" in res.output


def test_cli_vi_reverse_direction_and_device(tiny_registry: Path, data_root: Path) -> None:
    """--dataset notmnist runs the reverse direction (MNIST priors on notMNIST); --device is checked."""
    import json

    from typer.testing import CliRunner

    from dwp_hub.cli import app

    args = ["vi", "--dataset", "notmnist", "--prior", "standard-normal", "-n", "20", "--epochs", "1",
            "--widths", "2,4", "--eval-mc", "1", "--device", "cpu", "--json", "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "notMNIST-10k" in json.loads(res.output)["protocol"]
    res = CliRunner().invoke(app, ["vi", "--dataset", "cifar10"])
    assert res.exit_code == 2 and "notmnist" in res.output
    if not torch.cuda.is_available():
        res = CliRunner().invoke(app, ["vi", "--device", "cuda", "--epochs", "1"])
        assert res.exit_code == 2 and "no CUDA device" in res.output
