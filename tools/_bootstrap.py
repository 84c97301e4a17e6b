"""Makes ``import tools`` work for a script run as a file (``python tools/fig2a.py``), without touching sys.path.

A script run as a file has ``tools/`` (not the repository root) as its first import path, so it imports this
module as the top-level ``_bootstrap``, which registers the ``tools`` package from its own folder. Scripts
run as modules (``python -m tools.fig2a``) and tests import ``tools`` normally and never need it::

    if not __package__:  # run as a file: register the tools package
        import _bootstrap  # noqa: F401
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if "tools" not in sys.modules:
    _DIR = Path(__file__).resolve().parent
    _spec = importlib.util.spec_from_file_location("tools", _DIR / "__init__.py",
                                                   submodule_search_locations=[str(_DIR)])
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["tools"] = _module
    _spec.loader.exec_module(_module)
