"""The experiment scripts' shared machinery (tools/_experiment.py) and the figures' configs.

Seed syntax, config hashing / YAML / flags, the result file (provenance, atomic writes, resume), old CSVs (the
committed ones in docs/results stay readable and their recorded commands still resume), and the scripts run as
files and as modules. Runs that need the MNIST data use tiny budgets and skip without DWP_HUB_DATA.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tools_package  # noqa: F401 - makes `import tools` work
import torch

from tools import _experiment as E
from tools import bf16_check, fig2a, fig3a, fig4, ood, source_study

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


# -- seeds ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seeds"), [
    ("3", (3,)), ("0-4", (0, 1, 2, 3, 4)), ("0,2,5", (0, 2, 5)), ("0-2,7", (0, 1, 2, 7)), (" 5 , 1 ", (5, 1)),
    ("2,2,1-2", (2, 1)), (3, (3,)), ([0, "2-3"], (0, 2, 3)), ((4,), (4,)),
])
def test_one_seed_syntax(text: object, seeds: tuple[int, ...]) -> None:
    assert E.parse_seeds(text) == seeds


@pytest.mark.parametrize(("text", "error", "match"), [
    ("", ValueError, "no values"), (",", ValueError, "no values"), ("4-2", ValueError, "empty range"),
    ("-1", ValueError, "is not N, A-B"), ("a", ValueError, "is not N, A-B"), ("1-b", ValueError, "is not N, A-B"),
    (True, TypeError, "expected integers"), ([-1], ValueError, "negative value"),
])
def test_bad_seeds_are_errors(text: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        E.parse_seeds(text)


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2, 3, 4), (0, 2, 5), (0, 1, 2, 7, 9, 10), (5, 3)])
def test_format_seeds_round_trips(seeds: tuple[int, ...]) -> None:
    assert E.parse_seeds(E.format_seeds(seeds)) == seeds


def test_a_bare_number_means_one_seed_except_as_fig3a_and_fig4s_old_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert fig2a.Fig2aConfig.from_args(["--seeds", "5"])[0].seeds == (5,)
    assert fig3a.Fig3aConfig.from_args(["--seeds", "5"])[0].seeds == (0, 1, 2, 3, 4)  # docs/results/fig3a.md
    assert "old count syntax, read as seeds 0-4" in capsys.readouterr().err
    assert fig4.Fig4Config.from_args(["--seeds", "10"])[0].seeds == tuple(range(10))  # docs/results/fig4*.txt
    assert fig4.Fig4Config.from_args(["--seeds", "5-5"])[0].seeds == (5,)
    assert fig3a.Fig3aConfig.from_dict({"seeds": 5}).seeds == (5,)  # YAML: always the seed syntax
    with pytest.raises(SystemExit):
        fig4.Fig4Config.from_args(["--seeds", "0"])
    assert "for seed 0 alone write 0-0" in capsys.readouterr().err


# -- configs ----------------------------------------------------------------------------------------------
def test_config_hash_covers_settings_only() -> None:
    cfg = fig2a.Fig2aConfig(steps=400, batch=50)
    assert len(cfg.sha256()) == 16 and int(cfg.sha256(), 16) >= 0
    assert cfg.sha256() == fig2a.Fig2aConfig(steps=400, batch=50).sha256()
    same = cfg.replace(workers=2, threads=1, out_dir="/elsewhere", seeds="7", notes=("why",))  # run, grid, notes
    assert same.sha256() == cfg.sha256() and same.seeds == (7,) and same.out_dir == Path("/elsewhere")
    assert cfg.replace(steps=401).sha256() != cfg.sha256()
    assert fig3a.Fig3aConfig().sha256() != fig4.Fig4Config().sha256()
    assert E.config_hash({"a": 1, "b": [1, 2]}) == E.config_hash({"b": (1, 2), "a": 1})


def test_config_round_trips_through_dict_json_and_yaml(tmp_path: Path) -> None:
    import yaml

    for cls in (fig2a.Fig2aConfig, fig3a.Fig3aConfig, fig4.Fig4Config):
        cfg = cls()
        data = json.loads(json.dumps(cfg.to_dict()))
        assert cls.from_dict(data) == cfg
        path = tmp_path / f"{cls.NAME}.yaml"
        path.write_text(yaml.safe_dump(data))
        assert cls.from_yaml(path) == cfg
    assert dataclasses.is_dataclass(fig2a.Fig2aConfig) and fig2a.Fig2aConfig.__dataclass_params__.frozen


def test_flags_override_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seeds: 0-1\nsteps: 3\npriors: [dwp, standard-normal]\nnotes: [a note]\n")
    cfg, ns = fig2a.Fig2aConfig.from_args(["--config", str(path), "--steps", "5", "--batch", "50"])
    assert (cfg.seeds, cfg.steps, cfg.batch, cfg.priors, cfg.notes) == ((0, 1), 5, 50, ("dwp", "standard-normal"),
                                                                        ("a note",))
    assert ns.config == path
    path.write_text("notes: one note, with a comma\n")
    assert fig2a.Fig2aConfig.from_yaml(path).notes == ("one note, with a comma",)
    assert fig3a.Fig3aConfig.from_args(["--raw-features", "--out", str(tmp_path)])[0].standardize is False
    assert fig3a.Fig3aConfig.from_args(["--out-dir", str(tmp_path)])[0].out_dir == tmp_path
    # a list flag (nargs) of paths: one path per word, as a shell glob gives them
    assert fig3a.Fig3aConfig.from_args(["--sources", "a.safetensors", "b.safetensors"])[0].sources == (
        Path("a.safetensors"), Path("b.safetensors"))


def test_committed_configs_load_and_the_400_step_one_matches_its_recorded_command() -> None:
    yaml_cfg = fig2a.Fig2aConfig.from_yaml(REPO / "tools" / "configs" / "fig2a-400-steps.yaml")
    flags_cfg, _ = fig2a.Fig2aConfig.from_args(shlex.split("--seeds 0-4 --steps 400 --batch 50 --workers 2 --threads 1"))
    assert yaml_cfg == flags_cfg
    paths = sorted((REPO / "tools" / "configs").glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:  # every committed config loads (unknown keys and bad values are errors) into its class
        cls = {"fig2a": fig2a.Fig2aConfig, "fig3a": fig3a.Fig3aConfig, "fig4": fig4.Fig4Config,
               "ood": ood.OodConfig, "bf16": bf16_check.Bf16CheckConfig}[path.stem.split("-")[0]]
        assert isinstance(cls.from_yaml(path), cls)
    study = source_study.SourceStudyConfig.from_yaml(source_study.SourceStudyConfig.DEFAULT_CONFIG)
    assert study.vi["seeds"] == [0, 1, 2] and 7 in study.harvest and study.notes


@pytest.mark.parametrize(("text", "error"), [("stpes: 3\n", "unknown key"), ("seeds: 4-2\n", "empty range"),
                                             ("priors: [dwp, bogus]\n", "unknown arm"), ("- 1\n", "a mapping")])
def test_bad_configs_are_errors(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(E.ConfigError, match=error):
        fig2a.Fig2aConfig.from_yaml(path)


def test_bad_flags_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        fig2a.Fig2aConfig.from_args(["--seeds", "x"])
    assert exc.value.code == 2 and "--seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fig2a.Fig2aConfig.from_args(["--bound", "half"])


def test_fig2a_rows_depend_only_on_what_the_arm_uses() -> None:
    a = fig2a.Fig2aConfig(steps=400, batch=50, dwp="7=notmnist-7x7@1.2.0,5=notmnist-5x5@1.1.0")
    b = a.replace(dwp="7=notmnist-7x7@1.1.0,5=notmnist-5x5@1.1.0", bound="full")
    sn = {"size": 50, "prior": "standard-normal"}
    assert E.config_hash(a.row_settings(**sn)) == E.config_hash(b.row_settings(**sn))
    assert a.row_settings(size=50, prior="dwp") != b.row_settings(size=50, prior="dwp")
    assert a.row_settings(size=50, prior="sn-dwp-init")["dwp"] == a.dwp and "bound" not in a.row_settings(
        size=50, prior="sn-dwp-init")
    assert [a.epochs_for(n) for n in fig2a.SIZES] == [400, 200, 100, 40, 20]  # 400 steps at batch 50
    assert a.replace(random_priors=True).row_settings(size=50, prior="dwp")["dwp"] == E.RANDOM_SPEC


# -- result files ------------------------------------------------------------------------------------------
def test_result_file_records_provenance_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.csv"
    res = E.ResultFile(path, ["arm", "seed", "acc"], ["arm", "seed"])
    settings = {"experiment": "t", "steps": 3}
    assert not res.has(settings, arm="a", seed=0)
    res.add([{"arm": "a", "seed": 0, "acc": 0.5, "_private": "dropped"}], settings)
    res.record("python tools/t.py --seeds 0")
    res.record("python tools/t.py --seeds 0")
    again = E.ResultFile(path, ["arm", "seed", "acc"], ["arm", "seed"])
    assert again.has(settings, arm="a", seed=0) and again.has(dict(settings), arm="a")
    assert not again.has({**settings, "steps": 4}, arm="a", seed=0) and not again.has(settings, arm="a", seed=1)
    (row,) = again.rows
    assert row["config_sha256"] == E.config_hash(settings) and json.loads(row["settings"]) == settings
    assert row["dwp_hub"] == E.package_version() and "_private" not in row
    assert row["commit"] == E.git_commit()
    if (REPO / ".git").exists():  # the checkout's own commit, as git names it
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        assert row["commit"] in (head, head + "+dirty")
    assert again.commands() == ["python tools/t.py --seeds 0"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.commands.txt", "r.csv"]  # no temporary file left
    with pytest.raises(ValueError, match="key column"):
        again.add([{"arm": "b"}], settings)


def test_result_file_write_killed_midway_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.csv"
    res = E.ResultFile(path, ["arm", "seed", "acc"], ["arm", "seed"])
    res.add([{"arm": "a", "seed": s, "acc": 0.5} for s in range(3)], {"steps": 3})
    before = path.read_bytes()
    real, calls = csv.DictWriter.writerow, []

    def dies_after_two_rows(self, row):  # type: ignore[no-untyped-def]
        calls.append(row)
        if len(calls) > 3:  # the header, then two rows reach the file, then the process dies
            raise KeyboardInterrupt
        return real(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", dies_after_two_rows)
    with pytest.raises(KeyboardInterrupt):
        res.add([{"arm": "b", "seed": 0, "acc": 0.9}], {"steps": 3})
    monkeypatch.undo()
    assert path.read_bytes() == before  # the old file, whole
    assert len(E.ResultFile(path, ["arm", "seed", "acc"], ["arm", "seed"]).rows) == 3


def test_result_file_merges_partitions_by_key(tmp_path: Path) -> None:
    fields, key, settings = ["arm", "seed", "acc"], ["arm", "seed"], {"experiment": "t"}
    main, part_a, part_b = (E.ResultFile(tmp_path / f"{n}.csv", fields, key) for n in ("main", "a", "b"))
    main.add([{"arm": "x", "seed": 0, "acc": 0.5}], settings)
    part_a.add([{"arm": "x", "seed": 0, "acc": 0.5}, {"arm": "x", "seed": 1, "acc": 0.6}], settings)
    part_a.record("python tools/t.py --seeds 0-1 --csv a.csv")
    part_b.add([{"arm": "x", "seed": 1, "acc": 0.6}], {"experiment": "t", "steps": 9})  # other settings: a new row
    assert main.merge(part_a.path) == 1 and main.merge(part_a.path) == 0  # merging twice adds nothing
    assert main.merge(part_b.path) == 1 and main.merge(tmp_path / "missing.csv") == 0
    again = E.ResultFile(main.path, fields, key)
    assert [(r["seed"], r["acc"]) for r in again.rows] == [("0", "0.5"), ("1", "0.6"), ("1", "0.6")]
    assert again.has(settings, arm="x", seed=1) and again.commands() == ["python tools/t.py --seeds 0-1 --csv a.csv"]
    clash = E.ResultFile(tmp_path / "clash.csv", fields, key)
    clash.add([{"arm": "x", "seed": 0, "acc": 0.7}], settings)  # the same key with other results: refused
    with pytest.raises(ValueError, match="already in .* with other results"):
        again.merge(clash.path)
    assert len(E.ResultFile.read(main.path)) == 3  # the refused merge left the file as it was


def test_fig2a_merge_adds_partition_rows_and_rewrites_the_report(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    settings = {"experiment": "fig2a", "epochs": 1}
    part = fig2a.result_file(tmp_path / "part.csv")
    part.add([{"size": 50, "prior": "standard-normal", "seed": 3, "epochs": 1, "batch": 50, "acc_ensemble": 0.7,
               "acc_mean": 0.7, "nll_ensemble": 1.0, "steps": 1, "seconds": 1.0, "ms_per_step": 1.0}], settings)
    assert fig2a.main(["--out-dir", str(tmp_path / "out"), "--merge", str(part.path)]) == 0
    assert "1 row(s) added" in capsys.readouterr().out
    assert len(E.ResultFile.read(tmp_path / "out" / "fig2a.csv")) == 1 and (tmp_path / "out" / "fig2a.md").is_file()


def test_fig2a_report_sets_both_budgets_side_by_side_at_every_size(tmp_path: Path) -> None:
    def row(size: int, prior: str, seed: int, acc: float, steps: int) -> dict[str, str]:
        return {"size": str(size), "prior": prior, "seed": str(seed), "acc_ensemble": str(acc), "acc_mean": str(acc),
                "epochs": str(steps), "batch": "256", "steps": str(steps), "seconds": "1", "ms_per_step": "1"}

    long = [row(50, "standard-normal", s, 0.70 + 0.01 * s, 10000) for s in (0, 1)]
    short = [row(n, "standard-normal", 0, 0.8, 400) for n in (50, 200, 1000)]
    md, _ = fig2a.write_report(long, tmp_path, "python tools/fig2a.py", compare=("short.csv", short))
    text = md.read_text()
    assert "| standard normal | 0.705 ± 0.007 (2) | 0.800 ± 0.000 (1) | 0.717 |" in text  # N=50: both budgets, paper
    assert "At N = 200 / 1000" in text and "| standard normal | - | 0.800 ± 0.000 (1) | 0.890 |" in text
    assert "N=1000: this CSV -, short.csv 400 epochs = 400 steps" in text


def test_fig2a_target_lines_say_when_a_size_ran_short_of_the_papers_budget(tmp_path: Path) -> None:
    def row(size: int, seed: int, acc: float, epochs: int) -> dict[str, str]:
        return {"size": str(size), "prior": "dwp", "seed": str(seed), "acc_ensemble": str(acc), "acc_mean": str(acc),
                "epochs": str(epochs), "batch": "256", "steps": str(epochs), "seconds": "1", "ms_per_step": "1",
                "dwp_priors": "7=notmnist-7x7@1.2.0,5=notmnist-5x5@1.1.0"}

    rows = [row(50, 0, 0.81, 10000), row(200, 0, 0.85, 2000)]
    text = fig2a.write_report(rows, tmp_path, "python tools/fig2a.py")[0].read_text()
    assert "- N=50: deep weight prior 0.810 vs paper 0.800: met\n" in text
    assert "- N=200: deep weight prior 0.850 vs paper 0.915: MISSED (at 2000 epochs; the paper's 10,000)" in text


def test_fig2a_figure_title_states_each_budget_and_its_sizes() -> None:
    def row(size: int, epochs: int, steps: int) -> dict[str, str]:
        return {"size": str(size), "epochs": str(epochs), "steps": str(steps)}

    assert fig2a.budget_title([row(50, 400, 400), row(1000, 400, 1600)]) == " (400 epochs)"
    assert fig2a.budget_title([row(50, 10000, 10000), row(200, 2000, 10000)]) == " (10,000 steps per run)"
    mixed = [row(50, 10000, 10000), row(100, 10000, 10000), row(200, 2000, 2000), row(500, 1000, 2000),
             row(1000, 500, 2000), row(1000, 400, 1600)]  # a size's longest run names its budget
    assert fig2a.budget_title(mixed) == "\n(10,000 steps at N = 50/100; 2,000 steps at N = 200/500/1000)"


def test_fig2a_effects_compare_arms_that_differ_in_the_named_factor_only() -> None:
    """Each effect of the 2 x 2 is the difference of two arms (prior, initialisation) that differ in one factor: the
    prior effects dwp against standard normal at equal means, the initialisation effects dwp against Xavier means."""
    assert fig2a.ARMS["dwp"] == ("dwp", "dwp") and fig2a.ARMS["standard-normal"] == ("standard-normal", "xavier")
    assert fig2a.ARMS["sn-dwp-init"] == ("standard-normal", "dwp")
    assert fig2a.ARMS["dwp-xavier-init"] == ("dwp", "xavier")
    assert fig2a.ARMS["log-uniform"] == ("log-uniform", "xavier")  # the paper's arms start from Xavier means
    for label, a, b in fig2a.EFFECTS:
        (prior_a, init_a), (prior_b, init_b) = fig2a.ARMS[a], fig2a.ARMS[b]
        if label.startswith("the prior"):
            assert (prior_a, prior_b) == ("dwp", "standard-normal") and init_a == init_b, label
        else:
            assert (init_a, init_b) == ("dwp", "xavier") and prior_a == prior_b, label
    assert len({(a, b) for _, a, b in fig2a.EFFECTS}) == 4


def test_fig2a_report_splits_the_dwp_effect_into_prior_and_initialisation(tmp_path: Path) -> None:
    spec = "7=notmnist-7x7@1.2.0,5=notmnist-5x5@1.1.0"
    acc = {"dwp": (0.60, 0.70), "sn-dwp-init": (0.80, 0.84), "dwp-xavier-init": (0.55, 0.61),
           "standard-normal": (0.78, 0.80)}
    rows = [{"size": "50", "prior": p, "seed": str(s), "acc_ensemble": str(a[s]), "acc_mean": str(a[s]),
             "epochs": "400", "batch": "50", "steps": "400", "seconds": "1", "ms_per_step": "1", "commit": "abc1234",
             "dwp_priors": spec if fig2a.uses_dwp(p) else ""} for p, a in acc.items() for s in (0, 1)]
    text = fig2a.write_report(rows, tmp_path, "python tools/fig2a.py")[0].read_text()
    table = text.split("## Prior or initialisation")[1].split("\n## ")[0]
    # dwp − sn-dwp-init: −0.20, −0.14; dwp-xavier-init − standard normal: −0.23, −0.19
    assert "| the prior, dwp-initialised means (deep weight prior − standard normal, dwp-initialised means) | " \
           "-0.170 ± 0.042 (2) |" in table
    assert "| the prior, Xavier means (deep weight prior, Xavier means − standard normal) | -0.210 ± 0.028 (2) |" in table
    assert "(standard normal, dwp-initialised means − standard normal) | +0.030 ± 0.014 (2) |" in table
    assert "(deep weight prior − deep weight prior, Xavier means) | +0.070 ± 0.028 (2) |" in table
    assert spec not in table and "†" not in table  # one set of priors: no label; every row has its commit
    for r in rows:
        r["commit"] = "" if r["prior"] == "standard-normal" else "abc1234"
    table = fig2a.write_report(rows, tmp_path, "x")[0].read_text().split("## Prior or initialisation")[1]
    assert "| the prior, Xavier means (deep weight prior, Xavier means − standard normal) | -0.210 ± 0.028 (2) † |" \
           in table and "predate the commit column" in table
    assert "(deep weight prior − deep weight prior, Xavier means) | +0.070 ± 0.028 (2) |" in table
    one_seed = [r for r in rows if r["seed"] == "0"]
    assert "## Prior or initialisation" not in fig2a.write_report(one_seed, tmp_path, "x")[0].read_text()


def test_old_csvs_stay_readable_and_keep_their_rows(tmp_path: Path) -> None:
    old = tmp_path / "fig3a.csv"
    shutil.copy(RESULTS / "fig3a.csv", old)
    before = E.ResultFile.read(old)
    cfg = fig3a.Fig3aConfig(out_dir=tmp_path, seeds=(0,), widths=("1/16",), methods=("xavier",))
    res = fig3a.result_file(cfg)
    assert res.rows == before and res.fields[:len(fig3a.FIELDS)] == fig3a.FIELDS
    assert res.has(cfg.row_settings(method="xavier"), method="xavier", k="1/16", seed=0)  # by the old config column
    assert not res.has(cfg.replace(steps=999).row_settings(method="xavier"), method="xavier", k="1/16", seed=0)
    res.add([{"method": "xavier", "k": "1/16", "h0": 2, "h1": 8, "seed": 99, "test_accuracy": 0.5}],
            cfg.row_settings(method="xavier"))
    after = E.ResultFile.read(old)
    assert after[:-1] == [{**r, "config_sha256": "", "settings": "", "dwp_hub": "", "commit": ""} for r in before]
    assert after[-1]["settings"] and after[-1]["seed"] == "99"


def _todo_fig2a(cfg: fig2a.Fig2aConfig, res: E.ResultFile) -> list[tuple[int, str, int]]:
    return [(j["size"], j["prior"], j["seed"]) for j in fig2a.jobs(cfg)
            if not res.has(j["settings"], size=j["size"], prior=j["prior"], seed=j["seed"])]


def test_recorded_fig2a_commands_find_their_rows() -> None:
    res = fig2a.result_file(RESULTS / "fig2a.csv")
    assert sum(not r.get("settings") for r in res.rows) >= 180  # rows older than config hashing (legacy match)
    for command in res.commands()[1:]:  # the first one ran before three of today's default arms existed
        cfg, _ = fig2a.Fig2aConfig.from_args(shlex.split(command)[2:])
        if "@" not in cfg.dwp:  # what the unversioned default resolved to when the command ran
            cfg = cfg.replace(dwp="7=notmnist-7x7@1.2.0,5=notmnist-5x5@1.1.0")
        assert _todo_fig2a(cfg, res) == [], command
    cfg, _ = fig2a.Fig2aConfig.from_args(shlex.split(res.commands()[0])[2:])
    cfg = cfg.replace(dwp="7=notmnist-7x7@1.0.0,5=notmnist-5x5@1.0.0", priors="dwp,standard-normal,deterministic")
    assert _todo_fig2a(cfg, res) == []  # rows older than the version column read as 1.0.0
    assert len(_todo_fig2a(cfg.replace(steps=800), res)) == 75  # another budget: nothing matches


def test_recorded_fig3a_fig4_and_study_commands_find_their_rows() -> None:
    cfg, _ = fig3a.Fig3aConfig.from_args(shlex.split(
        "--seeds 10 --prior7 notmnist-7x7@1.2.0 --prior5 notmnist-5x5@1.1.0 --out " + str(RESULTS)))
    res = fig3a.result_file(cfg)
    assert [(s, k, m) for s in cfg.seeds for k in cfg.widths for m in cfg.methods
            if not res.has(cfg.row_settings(method=m), method=m, k=k, seed=s)] == []
    for part, seeds in (("b", "10"), ("a", "5")):
        cfg4, _ = fig4.Fig4Config.from_args(["--part", part, "--seeds", seeds, "--out", str(RESULTS)])
        res4 = fig4.result_file(cfg4, part)
        assert all(res4.has(cfg4.row_settings(part=part, method=m), part=part, method=m, seed=s)
                   for s in cfg4.seeds for m in cfg4.methods)
        steps = fig4._curves(res4, cfg4, part, "dwp")[0]
        assert len(steps) > 5
    study = source_study.SourceStudyConfig.from_yaml(source_study.SourceStudyConfig.DEFAULT_CONFIG)
    rows = source_study.result_file(RESULTS / "source_study.csv")
    for arm in {r["arm"] for r in rows.rows}:
        assert all(rows.has(study.row_settings(arm=arm), arm=arm, size=n, seed=s)
                   for n in study.vi["sizes"] for s in study.vi["seeds"])


def test_fig2a_report_takes_interpretation_from_notes_only(tmp_path: Path) -> None:
    for name in ("fig2a.csv", "fig2a.commands.txt", "fig2a.notes.md"):
        shutil.copy(RESULTS / name, tmp_path / name)
    assert fig2a.main(["--report-only", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "fig2a.md").read_text()
    assert "## Notes" in text and "Truncated budget" in text and "Reading these numbers" not in text
    (tmp_path / "fig2a.notes.md").unlink()
    assert fig2a.main(["--report-only", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "fig2a.md").read_text()
    assert "## Notes" not in text and "Truncated budget" not in text and "| standard normal (ours) |" in text


def test_source_study_report_prints_the_configs_notes(tmp_path: Path) -> None:
    for name in ("source_study.csv", "source_study.commands.txt"):
        shutil.copy(RESULTS / name, tmp_path / name)
    assert source_study.main(["--report-only", "--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "w")]) == 0
    text = (tmp_path / "source_study.md").read_text()
    assert "## Notes" in text and "Paper's released kernels" in text and "| shipped |" in text


# -- running jobs ------------------------------------------------------------------------------------------------
def test_run_jobs_serially_here_or_in_spawned_workers() -> None:
    got: list[int] = []
    E.run_jobs([9, 1, 4], lambda j: (os.getpid(), j), lambda r: got.append(r[1]) if r[0] == os.getpid() else None, 1)
    assert got == [9, 1, 4]  # in this process (a lambda cannot go to a worker), in order
    for workers, in_process in ((2, True), (1, False)):  # a spawned pool; results as they complete
        pooled: list[tuple[int, int]] = []
        E.run_jobs([9, 1, 4], _pid_and_isqrt, pooled.append, workers, in_process=in_process)
        assert sorted(r for _, r in pooled) == [1, 2, 3]
        assert all(pid != os.getpid() for pid, _ in pooled)  # computed in other processes
        assert len({pid for pid, _ in pooled}) <= workers


def _pid_and_isqrt(j: int) -> tuple[int, int]:  # module level: a spawned worker imports it
    return os.getpid(), math.isqrt(j)


# -- random stand-in priors ---------------------------------------------------------------------------------
def test_one_random_prior() -> None:
    state = torch.random.get_rng_state()
    a, b = E.random_prior(7, seed=7), E.random_priors((7, 5))
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is untouched
    assert a.card.arch.kind == "conv7" and b[5].card.arch.kind == "conv5" and set(b) == {7, 5}
    g = torch.Generator().manual_seed(0)
    assert torch.equal(a.sample(4, generator=g), b[7].sample(4, generator=torch.Generator().manual_seed(0)))


# -- the scripts ------------------------------------------------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=False)


@pytest.mark.parametrize("how", ["file", "module"])
def test_scripts_run_as_files_and_as_modules(how: str) -> None:
    for script in ("fig2a", "source_study") if how == "module" else ("fig3a", "fig4", "bench_init", "bench_vi", "bench_foundation", "bench_source"):
        proc = _run(f"tools/{script}.py", "--help") if how == "file" else _run("-m", f"tools.{script}", "--help")
        assert proc.returncode == 0, proc.stderr
        assert "--config" in proc.stdout or script == "bench_foundation", script


def test_no_sys_path_inserts_in_tools() -> None:
    for path in (REPO / "tools").glob("*.py"):
        text = path.read_text()
        assert not any(s in text for s in ("sys.path.insert", "sys.path.append", "sys.path[:0]")), path.name


@pytest.mark.usefixtures("data_root")
def test_fig3a_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--random-priors", "--seeds", "0-1", "--widths", "1/16", "--steps", "5", "--methods", "dwp,xavier",
            "--out", str(tmp_path), "--threads", "1"]
    assert fig3a.main(argv) == 0
    assert "4 run(s) to do" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "fig3a.csv").open()))
    assert len(rows) == 4 and all(r["config_sha256"] and r["commit"] == E.git_commit() for r in rows)
    assert json.loads(rows[0]["settings"])["priors"] == E.RANDOM_SPEC
    assert fig3a.main(argv) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert fig3a.main([*argv, "--steps", "6", "--methods", "xavier"]) == 0
    assert "2 run(s) to do" in capsys.readouterr().out


@pytest.mark.usefixtures("data_root")
def test_fig2a_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sizes", "50", "--seeds", "3", "--priors", "standard-normal,deterministic", "--epochs", "1",
            "--eval-mc", "1", "--threads", "1", "--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "w")]
    assert fig2a.main(argv) == 0
    assert "2 run(s) to do" in capsys.readouterr().out
    rows = E.ResultFile.read(tmp_path / "fig2a.csv")
    assert [(r["size"], r["prior"], r["seed"], r["epochs"]) for r in rows] == [
        ("50", "standard-normal", "3", "1"), ("50", "deterministic", "3", "1")]
    assert (tmp_path / "fig2a.commands.txt").read_text().startswith("python tools/fig2a.py --sizes 50")
    assert fig2a.main(argv) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert (tmp_path / "fig2a.md").is_file() and not list((tmp_path / "w").iterdir())  # checkpoints removed
    assert all(r["seconds"] != "" and float(r["ms_per_step"]) > 0 for r in rows)
    # a run resumed from a checkpoint that did not record its time has blank times; the report says so
    path = tmp_path / "fig2a.csv"
    with path.open(newline="") as f:
        table = list(csv.DictReader(f))
    table[0]["seconds"] = table[0]["ms_per_step"] = ""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    assert fig2a.main(["--report-only", "--out-dir", str(tmp_path)]) == 0
    assert "Runs: 2; total training time" in (tmp_path / "fig2a.md").read_text()
    assert "1 resumed run(s) without a recorded time" in (tmp_path / "fig2a.md").read_text()


@pytest.mark.usefixtures("data_root")
def test_fig2a_full_bound_runs_are_an_arm_of_their_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--sizes", "50", "--seeds", "0", "--priors", "dwp", "--epochs", "1", "--eval-mc", "1", "--threads", "1",
            "--random-priors", "--keep-checkpoints", "--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "w")]
    assert fig2a.main(argv) == 0
    assert "1 run(s) to do" in capsys.readouterr().out
    assert fig2a.main([*argv, "--bound", "full"]) == 0
    assert "1 run(s) to do" in capsys.readouterr().out  # the fast-bound row is not the full-bound arm's
    # separate checkpoints: a full-bound run never resumes a fast-bound one
    names = sorted(p.name for p in (tmp_path / "w").iterdir() if p.suffix == ".safetensors")
    assert len(names) == 2 and sum("-full-" in n for n in names) == 1
    rows = E.ResultFile.read(tmp_path / "fig2a.csv")
    assert sorted(r["bound"] for r in rows) == ["fast", "full"]
    text = (tmp_path / "fig2a.md").read_text()
    assert f"[{E.RANDOM_SPEC}, full bound] (ours)" in text and f"[{E.RANDOM_SPEC}] (ours)" in text


@pytest.mark.usefixtures("data_root")
def test_fig4_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--random-priors", "--seeds", "0-0", "--methods", "dwp,xavier", "--steps", "2", "--eval-every", "1",
            "--eval-n", "20", "--vae-steps", "1", "--vae-eval-every", "1", "--vae-eval-n", "10", "--out",
            str(tmp_path)]
    assert fig4.main(argv) == 0
    out = capsys.readouterr().out
    assert "fig4b: 2 run(s) to do" in out and "fig4a: 2 run(s) to do" in out
    assert len(E.ResultFile.read(tmp_path / "fig4b.csv")) == 2 * 3 and (tmp_path / "fig4a.commands.txt").is_file()
    assert fig4.main([*argv, "--part", "b"]) == 0
    assert "fig4b: 0 run(s) to do" in capsys.readouterr().out
