"""docs/architecture.md, the map from concept to module: every module it names exists, every dwp_hub subpackage
is on it, each concept a newcomer looks for has one module, the stated import order of dwp_hub/inference holds,
and each step of the build's data flow names functions that its modules hold."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import dwp_hub
from test_structure import _imports

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PKG = Path(dwp_hub.__file__).resolve().parent
PATH = re.compile(r"`((?:dwp_hub|tools|tests)/[\w/]*\.py)`")
#: The concepts of the issue: "a newcomer can name, for each, the one module that holds it".
CONCEPTS = ("registry", "card", "file format", "VAE", "prior", "initialisation", "Bayesian layers", "priors for VI",
            "VI training", "prior building", "CLI", "experiments")


def _text() -> str:
    return DOC.read_text("utf-8")


def _section(title: str) -> str:
    return _text().split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _module(path: str) -> str:
    parts = list(Path(path).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_named_module_exists() -> None:
    named = PATH.findall(_text())
    assert len(named) >= 20
    missing = [p for p in named if not (REPO / p).is_file()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_subpackage_is_on_the_map() -> None:
    text = _text()
    subpackages = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))
    assert {"cli", "inference", "model", "registry", "training"} <= set(subpackages)
    assert [s for s in subpackages if f"`dwp_hub/{s}/" not in text] == []


def test_each_concept_has_one_module() -> None:
    rows = {}
    for line in _section("Concept → module").splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]  # "\|" is text
        if len(cells) == 3 and PATH.fullmatch(cells[1]):
            assert cells[0] not in rows, f"{cells[0]} is on the map twice"
            rows[cells[0]] = PATH.fullmatch(cells[1]).group(1)
    assert [c for c in CONCEPTS if c not in rows] == []
    for concept, path in rows.items():
        assert (REPO / path).is_file(), (concept, path)


def test_the_stated_inference_import_order_holds() -> None:
    line = next(ln for ln in _section("Import order of `dwp_hub/inference`").splitlines() if "→" in ln)
    order = [m.strip(" `") for m in line.split("(")[0].split("→")]
    assert order == ["_protocols", "fast", "priors", "layers", "objective", "vi"]
    for i, name in enumerate(order):  # every import, deferred ones too: absolute, relative, `from pkg import mod`
        imported = {t.rpartition(".")[2] for t in _imports(PKG / "inference" / f"{name}.py", deferred=True)
                    if t.startswith("dwp_hub.inference.")}
        assert not imported & set(order[i + 1:]), (name, imported & set(order[i + 1:]))


def test_each_build_step_names_what_its_modules_hold() -> None:
    steps = re.split(r"\n(?=\d+\. )", _section("Data flow of a build").strip())[1:]
    assert len(steps) >= 6
    for step in steps:
        modules = [importlib.import_module(_module(p)) for p in PATH.findall(step)]
        assert modules, step
        names = [n for n in re.findall(r"`([A-Za-z_]\w*)`", step)]
        assert names, step
        for name in names:
            assert any(hasattr(m, name) for m in modules), f"{name} is in none of {[m.__name__ for m in modules]}"
