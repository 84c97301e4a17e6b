"""The CLI's structure (issue 15 items 4-5) and its edges (issue 14, "The CLI"): one module per
command group wired in one place, one error table, choices as usage errors, --debug/--version/-h,
sample formats, pictures, train-source options, ``remove`` and ``info --recipe``."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from dwp_hub.cli import app

runner = CliRunner()
CLI = Path(__file__).resolve().parents[1] / "dwp_hub" / "cli"


def _run(*args: str, **kw: object) -> object:
    return runner.invoke(app, list(args), env={"COLUMNS": "200"}, **kw)


@pytest.fixture(autouse=True)
def _no_debug_leak() -> object:
    from dwp_hub.cli import _errors

    yield
    _errors._state["debug"] = False


# -- structure ---------------------------------------------------------------------------------------------
def test_commands_are_wired_in_one_place_one_module_per_group() -> None:
    from dwp_hub.cli import _app

    groups = {"_registry": {"list", "info", "verify", "sample", "remove"},
              "_build": {"train-source", "harvest", "fit", "publish", "build"},
              "_hub": {"push", "pull"}, "_vi": {"vi"}}
    wired = {name: fn.__module__.rsplit(".", 1)[1] for name, fn, _ in _app.COMMANDS}
    assert wired == {c: g for g, cmds in groups.items() for c in cmds}
    assert sorted(c.name for c in app.registered_commands) == sorted(wired)
    for path in CLI.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if path.name != "__init__.py":
            assert "dwp_hub.cli._app" not in imported, f"{path.name} imports the app module (wiring is one-way)"
        text = path.read_text()
        assert "Optional[" not in text, f"{path.name}: use X | None"
        if path.name != "_options.py":
            for flag in ("--to", "--debug", "--work-dir", "--seed", "--json", "--out"):
                assert f'Option("{flag}"' not in text, f"{path.name} redefines {flag}; use the shared option in _options.py"
        assert "@app.command" not in text and "_command(" not in text


def test_choices_match_the_library() -> None:
    from dwp_hub.card import ACTIVATIONS, VAE_KINDS
    from dwp_hub.cli import _options as o
    from dwp_hub.data import CIFAR_DATASETS, DATASETS
    from dwp_hub.paper import PAPER_PRIORS
    from dwp_hub.training.source import AUGMENTATIONS

    assert [p.value for p in o.VIPrior] == list(PAPER_PRIORS)
    assert [a.value for a in o.Augment] == list(AUGMENTATIONS)
    assert {d.value for d in o.Dataset} == {*DATASETS, *CIFAR_DATASETS}
    assert [k.value for k in o.VAEKind] == list(VAE_KINDS)
    assert [a.value for a in o.Activation] == list(ACTIVATIONS)


# -- usage errors, --debug, --version, -h -----------------------------------------------------------------
@pytest.mark.parametrize(("args", "listed"), [
    (["vi", "--prior", "gaussian"], "'dwp', 'log-uniform', 'standard-normal', 'deterministic'"),
    (["vi", "--bound", "half"], "'fast', 'full'"),
    (["train-source", "--augment", "rotate"], "'none', 'affine', 'affine+elastic'"),
    (["train-source", "--dataset", "svhn"], "'notmnist'"),
    (["fit", "k.safetensors", "--kind", "conv9"], "'conv7', 'conv5', 'mlp'"),
])
def test_invalid_choices_are_usage_errors_listing_the_choices(args: list[str], listed: str) -> None:
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert listed in " ".join(res.output.split()) and "Traceback" not in res.output
    assert "Unexpected error" not in res.output


@pytest.mark.parametrize(("args", "flag"), [
    (["train-source", "--lr", "0"], "--lr"), (["fit", "k.safetensors", "--lr", "-1"], "--lr"),
    (["train-source", "--widths", "a,b"], "--widths"), (["train-source", "--l2", "-1"], "--l2"),
    (["harvest", "x.th", "--layer", "0.weight", "-k", "7", "--min-norm", "1", "--top-fraction", "0.5"],
     "--top-fraction"),
])
def test_bad_values_are_usage_errors(args: list[str], flag: str, tmp_path: Path) -> None:
    res = _run(*args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "Unexpected error" not in res.output
    assert flag in " ".join(res.output.split()), res.output  # the message names the option to fix


def test_debug_after_the_subcommand(tiny_registry: Path) -> None:
    from dwp_hub.errors import PriorNotFoundError

    res = runner.invoke(app, ["info", "tiny-7x8", "--debug"])
    assert res.exit_code == 1 and isinstance(res.exception, PriorNotFoundError)
    res = runner.invoke(app, ["info", "tiny-7x8"])  # and it does not stick
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit) and "Did you mean tiny-7x7" in res.stderr
    for value, shown in (("0", False), ("false", False), ("", False), ("yes", True), ("ON", True)):
        res = runner.invoke(app, ["info", "tiny-7x8"], env={"DWP_HUB_DEBUG": value})
        assert res.exit_code == 1 and isinstance(res.exception, PriorNotFoundError) == shown, value


def test_version_and_short_help() -> None:
    from dwp_hub import __version__

    for flag in ("--version", "-V"):
        res = _run(flag)
        assert res.exit_code == 0 and res.stdout.strip() == f"dwp-hub {__version__}"
    res = _run("-h")
    assert res.exit_code == 0 and "remove" in res.stdout and "train-source" in res.stdout
    for cmd in ("info", "sample", "vi", "remove", "publish"):
        res = _run(cmd, "-h")
        assert res.exit_code == 0 and "--debug" in res.stdout, cmd
    assert "--version" in _run("publish", "-h").stdout  # publish's own --version (X.Y.Z) is kept


def test_list_and_push_say_what_they_take(tiny_registry: Path, tmp_path: Path) -> None:
    res = _run("list", "tiny-7x7")
    assert res.exit_code == 2 and "dwp-hub list --all" in " ".join(res.output.split())
    res = _run("push", "tiny-7x7", "--to", str(tmp_path / "reg"))
    assert res.exit_code == 2 and "dwp-hub publish" in " ".join(res.output.split())
    assert not (tmp_path / "reg").exists()


# -- the error table ---------------------------------------------------------------------------------------
def test_error_table_formats_from_fields_and_sets_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dwp_hub import errors as E
    from dwp_hub.cli._errors import error_format, report

    cases = [
        (E.IntegrityError("Hash mismatch.", path=tmp_path / "reg" / "tiny-7x7" / "1.0.0" / "model.safetensors",
                          expected="a" * 64, actual="b" * 64),
         1, ["expected " + "a" * 64, "found " + "b" * 64, "dwp-hub remove tiny-7x7@1.0.0 --yes"]),
        (E.PriorNotFoundError("No prior named 'tiny-7x8'.", name="tiny-7x8", candidates=["tiny-7x7"]), 1,
         ["Did you mean tiny-7x7?"]),
        (E.CardError("Bad value.", path=tmp_path / "m.safetensors", field="card.arch.hidden"), 1,
         ["m.safetensors", "card field card.arch.hidden"]),
        (E.RecipeError("Must be a number.", path=tmp_path / "r.yaml", key="fit.epochs"), 1,
         ["r.yaml", "recipe key fit.epochs"]),
        (E.OutputPathError("Is a directory.", path=tmp_path), 2, ["Is a directory"]),
        (ValueError("boom"), 1, ["Unexpected error (ValueError): boom", "--debug"]),
    ]
    for err, code, texts in cases:
        assert error_format(err).exit_code == code
        assert report(err) == code
        out = " ".join(capsys.readouterr().err.split())
        for text in texts:
            assert text in out, (text, out)
        if isinstance(err, E.DwpHubError):
            assert out.startswith("Error:") and "--debug" not in out
    # a hint already in the message is not repeated
    report(E.PriorNotFoundError("Nope. Did you mean tiny-7x7?", name="x", candidates=["tiny-7x7"]))
    assert capsys.readouterr().err.count("Did you mean") == 1


@pytest.mark.parametrize(("err", "hint", "not_hint"), [
    ("AuthenticationError", "hf auth login", "Connect to the network"),
    ("OfflineError", "Connect to the network", "hf auth login"),
    ("RemoteNotFoundError", None, None),
])
def test_hub_errors_carry_their_own_hint(capsys: pytest.CaptureFixture, err: str, hint: str | None,
                                         not_hint: str | None) -> None:
    from dwp_hub import errors as E
    from dwp_hub.cli._errors import report

    assert report(getattr(E, err)("The Hub said no.")) == 1
    out = " ".join(capsys.readouterr().err.split())
    assert out.startswith("Error: The Hub said no.") and "--debug" not in out
    if hint is None:
        assert "hf auth login" not in out and "Connect to the network" not in out
    else:
        assert hint in out and not_hint not in out


def test_hub_errors_name_their_repository_and_revision(capsys: pytest.CaptureFixture) -> None:
    """A Hub error whose message does not name its repository is prefixed with it (and the revision asked for);
    one that names it is left alone."""
    from dwp_hub import errors as E
    from dwp_hub.cli._errors import report

    err = E.RevisionNotFoundError("The Hub said no.", repo_id="org/notmnist-7x7", revision="v9.9.9")
    assert (err.repo_id, err.revision) == ("org/notmnist-7x7", "v9.9.9") and isinstance(err, LookupError)
    assert report(err) == 1
    assert " ".join(capsys.readouterr().err.split()).startswith("Error: org/notmnist-7x7@v9.9.9: The Hub said no.")
    assert report(E.HubError("The Hub said no.", repo_id="org/r")) == 1
    assert " ".join(capsys.readouterr().err.split()).startswith("Error: org/r: The Hub said no.")
    assert report(E.HubError("No Hub repository 'org/r'.", repo_id="org/r", revision="v1.0.0")) == 1
    assert " ".join(capsys.readouterr().err.split()).startswith("Error: No Hub repository 'org/r'.")
    assert (E.OfflineError("x").repo_id, E.OfflineError("x").revision) == (None, None)


def test_damage_in_the_shipped_registry_says_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """A hash mismatch in the registry shipped with dwp-hub (reached directly or through a symlink) says
    reinstall: 'dwp-hub remove' cannot change that registry."""
    from dwp_hub import constants
    from dwp_hub import errors as E
    from dwp_hub.cli._errors import report

    shipped = tmp_path / "site" / "priors"
    (shipped / "tiny-7x7" / "1.0.0").mkdir(parents=True)
    (tmp_path / "link").symlink_to(shipped)
    monkeypatch.setattr(constants, "embedded_registry", lambda: shipped)
    for root in (shipped, tmp_path / "link"):
        err = E.IntegrityError("Hash mismatch.", path=root / "tiny-7x7" / "1.0.0" / "model.safetensors")
        assert report(err) == 1
        out = " ".join(capsys.readouterr().err.split())
        assert "pip install --force-reinstall dwp-hub" in out and "dwp-hub remove" not in out, (root, out)


def test_a_formatter_that_fails_still_shows_the_error(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    from dwp_hub import errors as E
    from dwp_hub.cli import _errors

    def broken(err: BaseException) -> str:
        raise AttributeError("formatter bug")

    monkeypatch.setitem(_errors.ERROR_FORMATS, E.CardError, _errors.ErrorFormat("Error", broken, 1))
    assert _errors.report(E.CardError("The card is damaged.")) == 1
    out = capsys.readouterr().err
    assert "Error: The card is damaged." in out and "formatter bug" not in out


def test_an_interrupt_exits_130_without_a_traceback(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dwp_hub._listing

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(dwp_hub._listing, "list_priors", interrupted)
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 130 and "Interrupted." in res.stderr and "Traceback" not in res.output


def test_a_damaged_local_prior_names_the_way_out(tiny_registry: Path) -> None:
    weights = tiny_registry / "tiny-7x7" / "1.0.0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    res = runner.invoke(app, ["sample", "tiny-7x7@1.0.0", "-o", str(tiny_registry.parent / "x.png")])
    err = " ".join(res.stderr.split())
    assert res.exit_code == 1 and "dwp-hub remove tiny-7x7@1.0.0 --yes" in err and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1  # one line (tools/hardening_campaign.py counts more as raw)
    assert _run("remove", "tiny-7x7@1.0.0", "--yes").exit_code == 0  # ... and the way out works
    assert _run("verify").exit_code == 0


def test_an_error_exits_through_the_table(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub.cli import _errors

    seen = []
    real = _errors.report
    monkeypatch.setattr(_errors, "report", lambda err: seen.append(type(err).__name__) or real(err))
    res = runner.invoke(app, ["info", "tiny-7x8"])
    assert res.exit_code == 1 and seen == ["PriorNotFoundError"]


# -- sample: formats and pictures --------------------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".jpg", b"\xff\xd8\xff"),
                                               (".jpeg", b"\xff\xd8\xff"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_sample_writes_the_picture_format_its_suffix_names(tiny_registry: Path, tmp_path: Path, suffix: str,
                                                           magic: bytes) -> None:
    out = tmp_path / "out" / f"grid{suffix}"
    res = _run("sample", "tiny-3x3", "-n", "9", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[: len(magic)] == magic
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_sample_npy_holds_every_kernel_seeded(tiny_registry: Path, tmp_path: Path) -> None:
    import dwp_hub

    out = tmp_path / "out" / "k.npy"
    assert _run("sample", "tiny-7x7@1.0.0", "-n", "10", "-o", str(out), "--seed", "4").exit_code == 0
    got = np.load(out, allow_pickle=False)
    want = dwp_hub.load("tiny-7x7@1.0.0").sample(10, generator=torch.Generator().manual_seed(4), noise=False)
    assert got.shape == (10, 1, 7, 7) and np.array_equal(got, want.numpy())
    assert [p.name for p in out.parent.iterdir()] == ["k.npy"]


@pytest.mark.parametrize("name", ["grid.gif", "grid", "grid.png.bak", "kernels.pt"])
def test_sample_refuses_an_unknown_format_before_any_work(tiny_registry: Path, tmp_path: Path, name: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import dwp_hub._api

    monkeypatch.setattr(dwp_hub._api, "load", lambda *a, **k: pytest.fail("loaded a prior"))
    res = _run("sample", "tiny-3x3", "-o", str(tmp_path / "out" / name))
    assert res.exit_code == 2 and ".png" in res.output and ".npy" in res.output
    assert not (tmp_path / "out").exists()


def test_grid_one_shared_diverging_scale_colour_bar_title_clear_of_the_grid() -> None:
    from dwp_hub._plot import CMAP, _plt, grid_figure

    kernels = torch.randn(300, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    kernels[7] *= 10  # one big kernel sets the shared scale
    fig = grid_figure(kernels, "tiny-5x5@1.0.0: 300 samples (seed 0)")
    try:
        fig.canvas.draw()
        images = [im for ax in fig.axes for im in ax.get_images()]
        assert len(images) == 1  # one image, not one axis per kernel
        lo, hi = images[0].get_clim()
        assert hi == -lo == pytest.approx(float(kernels.abs().max()))
        assert images[0].get_cmap().name.startswith(CMAP)
        assert len(fig.axes) == 2  # the grid and its colour bar
        title = fig._suptitle
        assert "tiny-5x5@1.0.0" in title.get_text()
        r = fig.canvas.get_renderer()
        assert title.get_window_extent(r).y0 >= fig.axes[0].get_window_extent(r).y1 - 1
    finally:
        _plt().close(fig)


# -- train-source options ----------------------------------------------------------------------------------
def test_train_source_exposes_lr_batch_size_l2_augment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub.training import source

    seen = []
    monkeypatch.setattr(source, "train_sources", lambda recipe, out, **kw: seen.append(recipe) or [])
    monkeypatch.setattr(source, "summarize", lambda paths: {"n": 0, "val_acc_mean": 0.0, "val_acc_min": 0.0})
    res = _run("train-source", "--widths", "64,32", "--lr", "0.01", "--batch-size", "64", "--l2", "0.0005",
               "--augment", "affine+elastic", "--n-nets", "2", "-o", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    r = seen[0]
    assert (r.lr, r.batch_size, r.l2, r.augment, r.n_nets, r.net.widths) == (0.01, 64, 0.0005, "affine+elastic", 2,
                                                                               (64, 32))
    assert _run("train-source", "-o", str(tmp_path / "t")).exit_code == 0
    d = seen[1]
    assert (d.lr, d.batch_size, d.l2, d.augment) == (source.SourceRecipe().lr, source.SourceRecipe().batch_size,
                                                     source.SourceRecipe().l2, "none")


# -- remove ------------------------------------------------------------------------------------------------
def _index(reg: Path) -> dict:
    return json.loads((reg / "index.json").read_text())["priors"]


def test_remove_a_version(tiny_registry: Path) -> None:
    assert "1.0.0" in _index(tiny_registry)["tiny-7x7"]
    res = _run("remove", "tiny-7x7@1.0.0", "--yes")
    assert res.exit_code == 0, res.output
    assert "1.0.0" not in _index(tiny_registry)["tiny-7x7"] and "1.1.0" in _index(tiny_registry)["tiny-7x7"]
    assert not (tiny_registry / "tiny-7x7" / "1.0.0").exists()
    assert not [p for p in tiny_registry.iterdir() if p.name.startswith(".staging")]
    listed = [(r["name"], r["version"]) for r in json.loads(_run("list", "--all", "--json").stdout)]
    assert ("tiny-7x7", "1.1.0") in listed and ("tiny-7x7", "1.0.0") not in listed
    assert _run("verify", "tiny-7x7").exit_code == 0
    # the last version of a name: the name goes too
    res = _run("remove", "tiny-3x3@1.0.0", "--registry", str(tiny_registry), "-y")
    assert res.exit_code == 0, res.output
    assert "tiny-3x3" not in _index(tiny_registry) and not (tiny_registry / "tiny-3x3").exists()
    assert _run("remove", "tiny-3x3@1.0.0", "--yes").exit_code == 1  # gone


def test_remove_asks_for_yes_and_needs_a_version(tiny_registry: Path) -> None:
    before = _index(tiny_registry)
    res = _run("remove", "tiny-7x7@1.0.0")
    assert res.exit_code == 2 and "--yes" in res.output
    res = _run("remove", "tiny-7x7", "--yes")
    assert res.exit_code == 2 and "NAME@X.Y.Z" in res.output
    assert _index(tiny_registry) == before and (tiny_registry / "tiny-7x7" / "1.0.0").is_dir()


def test_remove_asks_which_registry_when_several_hold_the_version(tiny_registry: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(tiny_registry, twin)
    monkeypatch.setenv("DWP_HUB_REGISTRY", os.pathsep.join([str(tiny_registry), str(twin)]))
    res = _run("remove", "tiny-7x7@1.0.0", "--yes")
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "several registries" in text and "--registry" in text, res.output
    assert (tiny_registry / "tiny-7x7" / "1.0.0").is_dir() and (twin / "tiny-7x7" / "1.0.0").is_dir()
    assert _run("remove", "tiny-7x7@1.0.0", "--yes", "--registry", str(twin)).exit_code == 0
    assert (tiny_registry / "tiny-7x7" / "1.0.0").is_dir() and not (twin / "tiny-7x7" / "1.0.0").exists()


def test_remove_refuses_the_embedded_registry(tiny_registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tiny_registry)
    monkeypatch.delenv("DWP_HUB_REGISTRY")
    before = _index(tiny_registry)
    for extra in ([], ["--registry", str(tiny_registry)]):
        res = _run("remove", "tiny-7x7@1.0.0", "--yes", *extra)
        assert res.exit_code == 1 and "read-only" in res.stderr and "Traceback" not in res.output
    assert _index(tiny_registry) == before and (tiny_registry / "tiny-7x7" / "1.0.0").is_dir()


def test_remove_an_orphan_folder(tiny_registry: Path) -> None:
    from dwp_hub.registry import LocalRegistry

    reg = LocalRegistry(tiny_registry, "t")
    raw = json.loads((tiny_registry / "index.json").read_text())
    del raw["priors"]["tiny-5x5"]
    (tiny_registry / "index.json").write_text(json.dumps(raw))
    assert [o.name for o in reg.orphans()] == ["tiny-5x5"]
    reg.remove("tiny-5x5", "1.0.0")
    assert reg.orphans() == [] and not (tiny_registry / "tiny-5x5").exists()


# -- info --recipe -----------------------------------------------------------------------------------------
def test_info_recipe_is_the_cards_recipe_and_loads_as_a_build_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub._listing import prior_card
    from dwp_hub.training.recipe import load_recipe

    res = runner.invoke(app, ["info", "notmnist-7x7", "--recipe"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "r.yaml"
    path.write_text(res.stdout)
    recipe = load_recipe(path)  # what 'dwp-hub build r.yaml' reads first
    _, card = prior_card("notmnist-7x7")
    assert (recipe.name, recipe.version) == (card.name, card.version)
    assert yaml.safe_load(res.stdout) == {k: v for k, v in card.recipe.items() if k != "rebuild"}


def test_info_json_and_recipe_together_are_a_usage_error(tiny_registry: Path) -> None:
    res = _run("info", "tiny-7x7", "--json", "--recipe")
    assert res.exit_code == 2 and "--json or --recipe" in " ".join(res.output.split()) and not res.stdout


def test_info_recipe_of_a_prior_without_one(tiny_registry: Path) -> None:
    res = runner.invoke(app, ["info", "tiny-7x7", "--recipe"])
    assert res.exit_code == 1 and "no recipe" in res.stderr and "Traceback" not in res.output
