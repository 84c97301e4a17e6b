"""Issue 14: one name per option across subcommands. An option name (long or short) has one meaning
wherever it appears: one definition in ``dwp_hub/cli/_options.py``, the same names, help and default."""

from __future__ import annotations

import inspect
import typing
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.models import OptionInfo
from typer.testing import CliRunner

from dwp_hub.cli import _app, _build, _options, _vi, app

REPO = Path(__file__).resolve().parents[1]
#: Old spellings that ``dwp-hub vi`` still reads, hidden from its help (``_vi.OLD_SPELLINGS``): each names
#: another thing in another command (``-n``: sample's number of kernels; ``--dataset``: train-source's source
#: dataset), so they stay out of the one-meaning check; the tests below hold them to being hidden aliases.
HIDDEN_OLD = {("vi", old) for old in _vi.OLD_SPELLINGS}
#: One meaning, but a default of each command's own: what the command writes there.
PER_COMMAND_DEFAULT = {"--out", "-o"}
#: The root's ``--version`` prints dwp-hub's version (every CLI's convention); ``publish --version`` names the
#: version to publish. The root's ``-V`` is its only other name.
ROOT_ONLY = {"--version", "-V"}


def _options_of_app() -> list[tuple[str, Any]]:
    """``(command, click option)`` of every option of the root and of every subcommand."""
    group = typer.main.get_command(app)
    found = [("(root)", p) for p in group.params]
    for name, command in group.commands.items():
        found += [(name, p) for p in command.params]
    return [(c, p) for c, p in found if p.param_type_name == "option"]


def _meaning(p: Any) -> tuple[Any, ...]:
    return tuple(sorted(p.opts + p.secondary_opts)), p.help, p.is_flag


def _by_name() -> dict[str, list[tuple[str, Any]]]:
    out: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for command, p in _options_of_app():
        for name in p.opts + p.secondary_opts:
            if not (command == "(root)" and name in ROOT_ONLY) and (command, name) not in HIDDEN_OLD:
                out[name].append((command, p))
    return out


def test_an_option_name_has_one_meaning_wherever_it_appears() -> None:
    shared = {name: uses for name, uses in _by_name().items() if len({c for c, _ in uses}) > 1}
    assert {"--to", "--out", "-o", "--seed", "--quiet", "--epochs", "--lr", "--all", "--name"} <= set(shared)
    assert {"--batch-size", "--l2", "--widths"} <= set(shared)  # train-source and vi
    for name, uses in shared.items():
        meanings = {_meaning(p) for _, p in uses}
        assert len(meanings) == 1, f"{name} means {len(meanings)} things: {[(c, _meaning(p)) for c, p in uses]}"
        if name not in PER_COMMAND_DEFAULT:
            defaults = {repr(p.default) for _, p in uses}  # a required option's is None: "no default"
            assert len(defaults) == 1, f"{name} has defaults {[(c, p.default) for c, p in uses]}"


def test_shared_options_are_defined_once_in_options_module() -> None:
    """Every option used by two commands is the same ``typer.Option`` object, defined in ``_options.py``."""
    defined: set[int] = set()
    for value in vars(_options).values():
        if isinstance(value, OptionInfo):
            defined.add(id(value))
        defined.update(id(m) for m in getattr(value, "__metadata__", ()) if isinstance(m, OptionInfo))
    infos: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for command, fn, _ in _app.COMMANDS:
        for param in inspect.signature(fn, eval_str=True).parameters.values():
            for info in typing.get_args(param.annotation)[1:]:
                if isinstance(info, OptionInfo):
                    # in Annotated, typer takes a first positional "--name" (the default slot) as the first name
                    decls = ((info.default,) if isinstance(info.default, str) and info.default.startswith("-")
                             else ()) + tuple(info.param_decls)
                    name = decls[0] if decls else "--" + param.name.replace("_", "-")
                    if (command, name) not in HIDDEN_OLD:
                        infos[name][id(info)].append(command)
    shared = {name: where for name, where in infos.items() if sum(map(len, where.values())) > 1}
    assert {"--to", "--out", "--seed", "--quiet", "--all", "--name", "--description", "--epochs", "--lr",
            "--batch-size", "--l2", "--widths", "--device"} <= set(shared)
    for name, where in shared.items():
        assert len(where) == 1, f"{name} is defined {len(where)} times: {list(where.values())}"
        assert set(where) <= defined, f"{name} is shared but not defined in dwp_hub/cli/_options.py"


def test_recipe_defaults_are_the_librarys() -> None:
    """Training options default to None, the recipe's value; the help lists those values, and the concrete
    CLI defaults equal the library's."""
    from dwp_hub.training.fit import FitRecipe
    from dwp_hub.training.source import SourceRecipe

    group = typer.main.get_command(app)
    src, fit = SourceRecipe(), FitRecipe()
    src_listed = f"{src.epochs} epochs, lr {src.lr:g}, batch size {src.batch_size}, l2 {src.l2:g}"
    fit_listed = f"{fit.epochs} epochs, lr {fit.lr:g}, batch size {fit.batch_size}"
    for command, recipe, listed in (("train-source", src, src_listed), ("fit", fit, fit_listed)):
        cmd = group.commands[command]
        assert listed in " ".join((cmd.help or "").split()), command
        params = {p.name: p for p in cmd.params}
        for key in ("epochs", "lr", "batch_size"):
            assert params[key].default is None
        assert params["seed"].default == recipe.seed
    from dwp_hub.inference.vi import VIRecipe
    from dwp_hub.paper import PAPER_WIDTHS

    vi, cmd = VIRecipe(), group.commands["vi"]
    text = " ".join((cmd.help or "").split())
    assert f"{vi.epochs} epochs, lr {vi.lr:g}, batch size {vi.batch_size}" in text, text
    assert f"l2 {vi.l2:g}" in text and "widths " + ",".join(map(str, PAPER_WIDTHS)) in text
    params = {p.name: p for p in cmd.params}
    assert all(params[key].default is None for key in ("epochs", "lr", "batch_size", "l2", "widths"))
    assert params["seed"].default == vi.seed and params["eval_mc"].default == vi.eval_mc
    params = {p.name: p for p in group.commands["train-source"].params}
    assert params["n_nets"].default == src.n_nets and params["l2"].default is None
    assert _build.DEFAULT_WIDTHS["fconv"] == src.net.widths
    assert {p.name: p for p in group.commands["fit"].params}["iw_k"].default == fit.iw_k


def test_train_source_defaults_reach_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub.training import source

    seen = []
    monkeypatch.setattr(source, "train_sources", lambda recipe, out, **kw: seen.append(recipe) or [])
    monkeypatch.setattr(source, "summarize", lambda paths: {"n": 0, "val_acc_mean": 0.0, "val_acc_min": 0.0})
    for arch in ("fconv", "fconv3", "cifar"):
        res = CliRunner().invoke(app, ["train-source", "--arch", arch, "--dataset", "cifar10" if arch == "cifar" else
                                       "notmnist", "-o", str(tmp_path / arch)])
        assert res.exit_code == 0, res.output
    assert [r.net.widths for r in seen] == [_build.DEFAULT_WIDTHS[a] for a in ("fconv", "fconv3", "cifar")]
    assert (seen[0].epochs, seen[0].lr, seen[0].batch_size, seen[0].l2) == (
        source.SourceRecipe().epochs, source.SourceRecipe().lr, source.SourceRecipe().batch_size, source.SourceRecipe().l2)


@pytest.mark.parametrize(("args", "flag"), [
    (["--held-out", "5"], "--held-out"),
    (["--top-fraction", "1.5"], "--top-fraction"),
    (["--top-fraction", "0"], "--top-fraction"),
])
def test_harvest_values_out_of_range_are_usage_errors_naming_the_flag(tmp_path: Path, args: list[str],
                                                                      flag: str) -> None:
    ck = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    res = CliRunner().invoke(app, ["harvest", *map(str, ck), "--layer", "0.weight", "-k", "7", *args,
                                   "--out", str(tmp_path / "k.safetensors")])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert flag in text and "held_out" not in text and "top_fraction" not in text and "Traceback" not in text


def test_pull_refuses_a_hub_destination() -> None:
    res = CliRunner().invoke(app, ["pull", "hf-hub:org/x", "--to", "hf-hub:org/y"])
    assert res.exit_code == 2 and "dwp-hub push" in " ".join(res.output.split())


def test_fit_refuses_an_out_folder_holding_other_files_before_training(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["fit", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "notes.txt" in res.output and "--out" in res.output, res.output
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_vi_old_spellings_are_hidden_aliases_that_the_docs_no_longer_use() -> None:
    import re

    vi = typer.main.get_command(app).commands["vi"]
    by_opt = {o: p for p in vi.params for o in p.opts + p.secondary_opts}
    assert set(_vi.OLD_SPELLINGS) == {"-n", "--dataset"}
    for old, (param, new) in _vi.OLD_SPELLINGS.items():
        alias, canonical = by_opt[old], by_opt[new]
        assert alias.opts == [old] and not alias.secondary_opts and alias.hidden and alias.default is None
        assert canonical.name == param and not canonical.hidden and new in (alias.help or "")
    shown = CliRunner().invoke(app, ["vi", "-h"], terminal_width=200).output
    spelled = {old: re.compile(rf"(?<![\w-]){re.escape(old)}(?![\w-])") for old in _vi.OLD_SPELLINGS}
    assert "--target-data" in shown and not any(rx.search(shown) for rx in spelled.values())
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for line in path.read_text("utf-8").splitlines():
            if "dwp-hub vi" in line:
                assert not any(rx.search(line) for rx in spelled.values()), (path.name, line)
