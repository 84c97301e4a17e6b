"""The package works installed from a wheel (not only editable): shipped priors travel as package data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from helpers import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-cache-dir",
                           "-q", "-w", str(out), str(REPO)], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("dwp_hub-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"dwp_hub", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert "dwp_hub/priors/index.json" in names and "dwp_hub/py.typed" in names
    assert "dwp_hub/cli/_app.py" in names and "dwp_hub/model/vae.py" in names
    assert not any("__pycache__" in n or n.endswith((".pyc", ".pkl", ".pt", ".pth")) for n in names)
    # Every shipped prior file travels with the wheel.
    shipped = {f"dwp_hub/priors/{p.relative_to(REPO / 'priors')}" for p in (REPO / "priors").rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(REPO / "priors").parts)}
    assert shipped <= set(names), shipped - set(names)
    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "dwp-hub = dwp_hub.cli:main" in meta


_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    site = Path(sys.argv[1]).resolve()
    import dwp_hub
    from dwp_hub import constants
    pkg = Path(dwp_hub.__file__).resolve().parent
    assert pkg == site / "dwp_hub", (pkg, site)
    emb = constants.embedded_registry().resolve()
    assert emb == pkg / "priors" and (emb / "index.json").is_file(), emb
    import dwp_hub.cli._app, dwp_hub.model.vae, dwp_hub.card
    for mod in (dwp_hub.cli._app, dwp_hub.model.vae, dwp_hub.card):
        assert site in Path(mod.__file__).resolve().parents, mod.__file__
    infos = dwp_hub.list_priors()
    import torch
    prior = dwp_hub.load("tiny-3x3")
    kernels = prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert kernels.shape == (5, 1, 3, 3)
    shipped = json.loads((emb / "index.json").read_text())["priors"]
    loaded = []
    for name, versions in sorted(shipped.items()):
        for version in versions:
            p = dwp_hub.load(f"{name}@{version}")
            assert p.source.startswith("embedded:"), p.source
            loaded.append(p.card.spec)
    print(json.dumps({"listed": [i.spec for i in infos], "registries": sorted({i.registry for i in infos}),
                      "shipped_loaded": loaded}))
""")


def test_import_and_load_from_wheel(unpacked: Path, tiny_registry: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(unpacked), "DWP_HUB_REGISTRY": str(tiny_registry)}
    env.pop("PYTHONSAFEPATH", None)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(unpacked)], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"tiny-3x3@1.0.0", "tiny-5x5@1.0.0", "tiny-7x7@1.1.0"} <= set(out["listed"])
    shipped = json.loads((REPO / "priors" / "index.json").read_text())["priors"]
    assert len(out["shipped_loaded"]) == sum(len(v) for v in shipped.values())
    if shipped:
        assert "embedded" in out["registries"]


def test_cli_from_wheel(unpacked: Path, tiny_registry: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(unpacked), "DWP_HUB_REGISTRY": str(tiny_registry)}
    code = "import sys; from dwp_hub.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "list", "--json"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tiny-7x7@1.1.0" in {r["spec"] for r in json.loads(proc.stdout)}
