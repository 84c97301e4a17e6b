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


def test_no_module_level_import_cycle() -> None:
    graph = _graph(deferred=False)
    # a package importing its own submodules is not a cycle through the package's users
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    assert _cycles(graph) == []


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
