"""Structure: no import cycle inside dwp_hub, inference/ imports bottom-up, the public surface in sync."""

from __future__ import annotations

import ast
from pathlib import Path

import dwp_hub

PKG = Path(dwp_hub.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, deferred: bool) -> set[str]:
    """dwp_hub modules imported by ``path``: at module level (``deferred=False``) or anywhere."""
    tree = ast.parse(path.read_text("utf-8"))

    def walk(node: ast.AST) -> list[ast.AST]:  # every node, except inside `if TYPE_CHECKING:` blocks
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return []
        out = [node]
        for child in ast.iter_child_nodes(node):
            out += walk(child)
        return out

    nodes = walk(tree) if deferred else iter(tree.body)
    out: set[str] = set()
    pkg = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.If) and not deferred:  # `if TYPE_CHECKING:` blocks are not imports at run time
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dwp_hub")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.rsplit(".", node.level - 1)[0] if node.level > 1 else pkg
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("dwp_hub"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _graph(deferred: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {t for t in _imports(path, deferred) if t in modules and t != name}
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def _ancestors(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _with_parent_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing ``a.b.c`` first runs ``a/__init__`` and ``a/b/__init__``: add those edges (a module's own parents
    have run before it, so they are not edges)."""
    out = {}
    for m, ts in graph.items():
        edges = set(ts)
        for t in ts:
            edges |= _ancestors(t) - _ancestors(m) - {m}
        out[m] = {t for t in edges if t in graph}
    return out


def test_no_module_level_import_cycle() -> None:
    graph = _with_parent_packages(_graph(deferred=False))
    assert graph["dwp_hub.paper"] >= {"dwp_hub.inference", "dwp_hub.model", "dwp_hub.registry"}  # parent edges
    # a package importing its own submodules is not a cycle through the package's users
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    assert _cycles(graph) == []


def test_cycle_finder_sees_a_cycle_through_a_parent_package() -> None:
    """``a.x`` imports ``b.y``, whose package ``b/__init__`` imports ``a.z``: a cycle only through the parents."""
    graph = {"p": set(), "p.a": {"p.a.z"}, "p.a.x": {"p.b.y"}, "p.a.z": set(), "p.b": {"p.a.x"}, "p.b.y": set()}
    assert _cycles(graph) == []
    assert _cycles(_with_parent_packages(graph)) != []


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported first (dwp_hub purged from ``sys.modules`` before each; torch stays loaded), so an
    import order that only works because another module ran first fails here."""
    import subprocess
    import sys

    names = sorted(_module_name(p) for p in PKG.rglob("*.py"))
    script = (
        "import importlib, sys\n"
        "import torch\n"
        "bad = []\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'dwp_hub' or m.startswith('dwp_hub.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as e:\n"
        "        bad.append(f'{name}: {type(e).__name__}: {e}')\n"
        "print(len(bad)); print('\\n'.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=PKG.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[0] == "0", out.stdout
    assert len(names) > 40


def test_inference_imports_bottom_up() -> None:
    """_protocols -> fast -> priors -> layers -> objective -> vi: no module imports one to its right."""
    order = ["_protocols", "fast", "priors", "layers", "objective", "vi"]
    graph = _graph(deferred=True)
    for i, name in enumerate(order):
        deps = {t.rpartition(".")[2] for t in graph[f"dwp_hub.inference.{name}"] if t.startswith("dwp_hub.inference.")}
        assert not deps & set(order[i + 1:]), (name, deps & set(order[i + 1:]))
    for name in order:
        assert "TYPE_CHECKING" not in (PKG / "inference" / f"{name}.py").read_text("utf-8"), name


def test_public_inference_names_resolve() -> None:
    import dwp_hub.inference as inf

    assert sorted(inf.__all__) == sorted(set(inf.__all__))
    for name in inf.__all__:
        assert getattr(inf, name) is not None, name


def test_no_import_cycle_even_through_deferred_imports() -> None:
    graph = _graph(deferred=True)
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    assert _cycles(graph) == []


def test_top_level_all_matches_the_lazy_table() -> None:
    """``dwp_hub.__all__`` and the lazy-import table name the same objects, and each resolves."""
    import importlib

    names = set(dwp_hub.__all__) - {"__version__"}
    assert names == set(dwp_hub._LAZY)
    for name, module in dwp_hub._LAZY.items():
        assert getattr(importlib.import_module(module), name) is getattr(dwp_hub, name)
