"""Importing this module makes ``import tools`` work in the tests (the experiment scripts, not installed).

It registers the package from its folder the way a script run as a file does (``tools/_bootstrap.py``), so
neither the tests nor the scripts put the repository on ``sys.path``; scripts spawned as subprocesses run
``python tools/X.py`` from a checkout.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1] / "tools"

if "tools" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("_bootstrap", TOOLS / "_bootstrap.py")
    assert _spec is not None and _spec.loader is not None
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
