"""Issue 13.3: ``train-source``, ``fit`` and ``build`` take ``--device`` (the library functions ``device=``).

The CPU is passed explicitly and gives what the default gives; a device the machine lacks is a usage error
(exit 2) naming it, refused before any work; the device enters no recipe, cache key or card. The CUDA paths run
where a GPU is present and skip with the reason elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import synthetic_kernels
from typer.testing import CliRunner

from dwp_hub._device import resolve_device
from dwp_hub.card import ArchConfig, card_from_weights_file
from dwp_hub.cli import app
from dwp_hub.errors import ConfigError
from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.model.vae import _noise
from dwp_hub.training import fit as fit_module
from dwp_hub.training import recipe as recipe_module
from dwp_hub.training import source
from dwp_hub.training._ckpt import save_checkpoint
from dwp_hub.training.fit import FitRecipe, fit_vae
from dwp_hub.training.recipe import build, load_recipe, parse_recipe

CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA device (torch.cuda.is_available() is False here)")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(),
                             reason="checks the refusal of CUDA on a machine without it; this one has a GPU")
ARCH = ArchConfig("conv7", 7, 2, 8)
RECIPE = FitRecipe(epochs=2, iw_k=4, iw_max_kernels=4, seed=1)


def _fake_sources(folder: Path, n: int = 4) -> list[Path]:
    """Checkpoints of randomly initialised fconv(6, 8) nets (no data needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        torch.manual_seed(i)
        path = folder / f"net{i}.safetensors"
        save_checkpoint(path, build_net(NetConfig("fconv", (6, 8))).state_dict(),
                        {"val_accuracy": 0.5, "dataset_sha256": "ab" * 32, "split": "test"})
        paths.append(path)
    return paths


def _checkpoint_recipe(tmp_path: Path) -> Path:
    recipe = {
        "name": "tiny-dev", "version": "0.1.0", "description": "tiny",
        "source": {"checkpoints": [str(p) for p in _fake_sources(tmp_path / "nets")], "domain": "synthetic",
                   "network": "fconv(6,8)"},
        "harvest": {"layer": "0.weight", "kernel_size": 7, "held_out": [3], "min_kernels": 1},
        "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4},
        "fit": {"epochs": 2, "iw_k": 4, "iw_max_kernels": 4, "seed": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# -- the device itself ------------------------------------------------------------------------------------
def test_resolve_device() -> None:
    assert resolve_device() == resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ConfigError, match="'gpu0' is not a device"):
        resolve_device("gpu0")
    with pytest.raises(ConfigError, match="not meta"):
        resolve_device("meta")


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_refused_naming_it(name: str) -> None:
    with pytest.raises(ConfigError, match=f"device '{name}': no CUDA device is available here"):
        resolve_device(name)


@CUDA
def test_a_cuda_index_beyond_the_devices_is_refused() -> None:
    n = torch.cuda.device_count()
    assert resolve_device("cuda") == torch.device("cuda") and resolve_device("cuda:0").index == 0
    with pytest.raises(ConfigError, match=f"has {n} CUDA device"):
        resolve_device(f"cuda:{n}")


def test_vae_noise_comes_from_the_generators_device() -> None:
    like = torch.empty(0, dtype=torch.float64)
    ref = torch.randn((3, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(_noise((3, 2), torch.Generator().manual_seed(0), like), ref)  # CPU: unchanged
    meta = _noise((3, 2), torch.Generator().manual_seed(0), torch.empty(0, device="meta"))
    assert meta.device.type == "meta" and meta.shape == (3, 2)  # drawn on the CPU, moved to the kernels' device


# -- the library: cpu explicitly is the default --------------------------------------------------------------
def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_on_cpu_explicitly_is_the_default() -> None:
    data = synthetic_kernels(7, n=64, n_held=16)
    a = fit_vae(data, ARCH, RECIPE, progress=False)
    b = fit_vae(data, ARCH, RECIPE, progress=False, device="cpu")
    assert _states_equal(a.vae, b.vae) and a.metrics == b.metrics and a.history == b.history
    assert next(b.vae.parameters()).device.type == "cpu"
    with pytest.raises(ConfigError, match="not meta"):
        fit_vae(data, ARCH, RECIPE, progress=False, device="meta")


def test_train_one_on_cpu_explicitly_is_the_default(tmp_path: Path, data_root: Path) -> None:
    from dwp_hub.training.harvest import read_checkpoint

    recipe = source.SourceRecipe("notmnist", NetConfig("fconv", (2, 2)), n_nets=1, epochs=1, batch_size=512)
    a = read_checkpoint(source.train_one(recipe, 0, tmp_path / "a"))
    b = read_checkpoint(source.train_one(recipe, 0, tmp_path / "b", device="cpu"))
    assert a[0].keys() == b[0].keys() and all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1]["val_accuracy"] == b[1]["val_accuracy"]


def _fake_train_one(calls: list[Any]) -> Any:
    def train_one(recipe: source.SourceRecipe, index: int, out_dir: str | Path, threads: int = 0,
                  on_epoch: Any = None, inspect: Any = None, device: Any = None) -> Path:
        calls.append(device)
        path = Path(out_dir) / f"{recipe.dataset}-{recipe.net.arch}-{index:03d}.safetensors"
        save_checkpoint(path, {"0.weight": torch.zeros(1, 1, 7, 7)}, {"val_accuracy": 0.5})
        return path

    return train_one


def test_source_nets_are_cached_whatever_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(source, "train_one", _fake_train_one(calls))
    recipe = source.SourceRecipe(n_nets=2)
    assert '"device"' not in json.dumps(recipe.to_dict())
    folder = source.source_dir(recipe, tmp_path)
    assert len(source.train_sources(recipe, folder, progress=False, device="cpu")) == 2
    assert calls == [torch.device("cpu")] * 2
    assert len(source.train_sources(recipe, source.source_dir(recipe, tmp_path), progress=False)) == 2
    assert len(calls) == 2  # the same folder, nothing trained again
    with pytest.raises(ConfigError, match="not meta"):  # refused before any work
        source.train_sources(recipe, tmp_path / "other", progress=False, device="meta")
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").iterdir())


def test_build_on_cpu_explicitly_is_the_default_and_the_device_enters_no_card(tmp_path: Path) -> None:
    recipe = load_recipe(_checkpoint_recipe(tmp_path))
    a = build(recipe, tmp_path / "ra", tmp_path / "wa", progress=False)
    b = build(recipe, tmp_path / "rb", tmp_path / "wb", progress=False, device="cpu")
    ca, cb = card_from_weights_file(a / "model.safetensors"), card_from_weights_file(b / "model.safetensors")
    assert ca.weights_sha256 == cb.weights_sha256 and ca.metrics == cb.metrics and ca.recipe == cb.recipe
    assert '"device"' not in json.dumps(cb.recipe)  # the recipe (and its rebuild) is the same on any device
    assert ca.training.device == cb.training.device == "cpu"  # where it ran: provenance, beside threads and torch


def test_build_trains_sources_on_the_device_and_records_it_beside_them(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    fakes = _fake_sources(tmp_path / "fake")

    def train_sources(recipe: Any, out_dir: Path, workers: int = 1, progress: bool = True, device: Any = None):
        seen["sources"] = device
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return fakes

    real_fit = fit_module.fit_vae

    def fit_vae(*args: Any, device: Any = None, **kw: Any) -> Any:
        seen["fit"] = device
        return real_fit(*args, device=device, **kw)

    monkeypatch.setattr(source, "train_sources", train_sources)
    monkeypatch.setattr(fit_module, "fit_vae", fit_vae)
    recipe = parse_recipe({
        "name": "tiny-src", "version": "0.0.1",
        "source": {"dataset": "notmnist", "net": {"arch": "fconv", "widths": [6, 8]}, "n_nets": 4, "epochs": 1},
        "harvest": {"layer": "0.weight", "kernel_size": 7, "held_out": [3], "min_kernels": 1},
        "vae": {"kind": "conv7", "z_dim": 2, "hidden": 4}, "fit": {"epochs": 1, "iw_k": 2, "iw_max_kernels": 2},
    })
    build(recipe, tmp_path / "reg", tmp_path / "work", progress=False, device="cpu")
    assert seen == {"sources": torch.device("cpu"), "fit": torch.device("cpu")}
    timing = json.loads((source.source_dir(recipe.source, tmp_path / "work") / "timing.json").read_text())
    assert timing["device"] == "cpu"
    with pytest.raises(ConfigError, match="not meta"):
        build(recipe, tmp_path / "reg2", tmp_path / "work2", progress=False, device="meta")
    assert not (tmp_path / "work2").exists()  # refused before any work


# -- the command line ---------------------------------------------------------------------------------------
def _commands(tmp_path: Path) -> dict[str, list[str]]:
    kernels = tmp_path / "k.safetensors"
    synthetic_kernels(7, n=64, n_held=16).save(kernels)
    return {
        "train-source": ["train-source", "--widths", "2,2", "--n-nets", "1", "--epochs", "1",
                         "--out", str(tmp_path / "src"), "-q"],
        "fit": ["fit", str(kernels), "--out", str(tmp_path / "fit"), "--epochs", "1", "--hidden", "4", "--iw-k", "2",
                "-q"],
        "build": ["build", str(_checkpoint_recipe(tmp_path)), "--to", str(tmp_path / "reg"), "--work-dir",
                  str(tmp_path / "w"), "-q"],
    }


@NO_CUDA
@pytest.mark.parametrize("command", ["train-source", "fit", "build"])
def test_cli_cuda_without_a_gpu_is_a_usage_error_naming_the_device(tmp_path: Path, command: str) -> None:
    argv = _commands(tmp_path)[command]
    for device in ("cuda", "cuda:0"):
        res = CliRunner().invoke(app, [*argv, "--device", device])
        assert res.exit_code == 2, res.output
        text = " ".join(res.output.split())
        assert "--device" in text and f"'{device}'" in text and "no CUDA device" in text, text
    assert not any((tmp_path / d).exists() for d in ("src", "fit", "reg", "w"))  # refused before any work


@pytest.mark.parametrize("command", ["train-source", "fit", "build"])
def test_cli_bad_device_is_a_usage_error(tmp_path: Path, command: str) -> None:
    res = CliRunner().invoke(app, [*_commands(tmp_path)[command], "--device", "gpu0"])
    assert res.exit_code == 2 and "is not a device" in " ".join(res.output.split()), res.output
    assert not any((tmp_path / d).exists() for d in ("src", "fit", "reg", "w"))  # refused before any work


def test_cli_cpu_reaches_the_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list[Any]] = {"sources": [], "fit": [], "build": []}
    monkeypatch.setattr(source, "train_sources", lambda recipe, out, **kw: seen["sources"].append(kw["device"]) or [])
    monkeypatch.setattr(source, "summarize", lambda paths: {"n": 0, "val_acc_mean": 0.0, "val_acc_min": 0.0})
    real_fit = fit_module.fit_vae
    monkeypatch.setattr(fit_module, "fit_vae", lambda *a, **kw: seen["fit"].append(kw["device"]) or real_fit(*a, **kw))
    real_build = recipe_module.build
    monkeypatch.setattr(recipe_module, "build",
                        lambda *a, **kw: seen["build"].append(kw["device"]) or real_build(*a, **kw))
    commands = _commands(tmp_path)
    for name in ("train-source", "fit", "build"):
        res = CliRunner().invoke(app, [*commands[name], "--device", "cpu"])
        assert res.exit_code == 0, (name, res.output)
    # build's own fit gets the resolved device
    assert seen == {"sources": ["cpu"], "fit": ["cpu", torch.device("cpu")], "build": ["cpu"]}
    res = CliRunner().invoke(app, commands["fit"][:2] + ["--out", str(tmp_path / "fit2"), "--epochs", "1",
                                                          "--hidden", "4", "--iw-k", "2", "-q"])
    assert res.exit_code == 0 and seen["fit"][-1] is None  # not given: the library's default (the CPU)


# -- CUDA (skipped without a GPU) ---------------------------------------------------------------------------
@CUDA
def test_fit_on_cuda_matches_the_cpu_up_to_float_rounding() -> None:
    data = synthetic_kernels(7, n=64, n_held=16)
    a = fit_vae(data, ARCH, RECIPE, progress=False, device="cpu")
    b = fit_vae(data, ARCH, RECIPE, progress=False, device="cuda")
    assert next(b.vae.parameters()).device.type == "cpu" and b.device == "cuda"  # returned on the CPU
    sa, sb = a.vae.state_dict(), b.vae.state_dict()
    assert all(torch.allclose(sa[k], sb[k], rtol=1e-2, atol=1e-3) for k in sa)
    assert b.metrics.heldout_elbo == pytest.approx(a.metrics.heldout_elbo, abs=0.05)
    assert b.history == pytest.approx(a.history, abs=0.05)


@CUDA
def test_train_one_on_cuda_matches_the_cpu_up_to_float_rounding(tmp_path: Path, data_root: Path) -> None:
    from dwp_hub.training.harvest import read_checkpoint

    recipe = source.SourceRecipe("notmnist", NetConfig("fconv", (2, 2)), n_nets=1, epochs=1, batch_size=512)
    a, ma = read_checkpoint(source.train_one(recipe, 0, tmp_path / "a", device="cpu"))
    b, mb = read_checkpoint(source.train_one(recipe, 0, tmp_path / "b", device="cuda"))
    assert all(b[k].device.type == "cpu" and torch.allclose(a[k], b[k], rtol=1e-2, atol=1e-3) for k in a)
    assert mb["val_accuracy"] == pytest.approx(ma["val_accuracy"], abs=0.02)
    assert '"device"' not in json.dumps(mb["recipe"])


@CUDA
def test_cli_fit_and_build_on_cuda(tmp_path: Path) -> None:
    commands = _commands(tmp_path)
    for name in ("fit", "build"):
        res = CliRunner().invoke(app, [*commands[name], "--device", "cuda"])
        assert res.exit_code == 0, (name, res.output)
