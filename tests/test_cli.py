"""Every foundation command through typer's runner, plus the no-torch guarantee of list/info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from dwp_hub.cli import app

runner = CliRunner()


def _run(*args: str) -> object:
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture()
def only_tiny(tiny_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny registry, with the embedded registry (real shipped priors) hidden."""
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "no-embedded")
    return tiny_registry


def test_help() -> None:
    res = _run("--help")
    assert res.exit_code == 0
    for cmd in ("list", "info", "sample", "verify"):
        assert cmd in res.stdout


def test_list(only_tiny: Path) -> None:
    res = _run("list")
    assert res.exit_code == 0, res.output
    for name in ("tiny-3x3", "tiny-5x5", "tiny-7x7"):
        assert name in res.stdout
    assert "1.1.0" in res.stdout and "1.0.0 (old)" not in res.stdout
    res = _run("list", "--all")
    assert "1.0.0 (old)" in res.stdout


def test_list_json(only_tiny: Path) -> None:
    res = _run("list", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["spec"] for r in rows] == ["tiny-3x3@1.0.0", "tiny-5x5@1.0.0", "tiny-7x7@1.1.0"]
    assert {r["kernel_size"] for r in rows} == {3, 5, 7} and all(r["latest"] for r in rows)
    assert all(r["registry"].startswith("DWP_HUB_REGISTRY:") for r in rows)
    rows = json.loads(_run("list", "--json", "--all").stdout)
    assert len(rows) == 4


def test_list_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "empty")
    res = _run("list")
    assert res.exit_code == 0 and "No priors found" in res.stdout
    assert json.loads(_run("list", "--json").stdout) == []


def test_info(tiny_registry: Path) -> None:
    res = _run("info", "tiny-7x7")
    assert res.exit_code == 0, res.output
    for text in ("tiny-7x7@1.1.0", "held-out ELBO", "conv7", "synthetic", "weights sha256", "MIT"):
        assert text in res.stdout, text
    assert "tiny-7x7@1.0.0" in _run("info", "tiny-7x7@1.0.0").stdout


def test_info_json(tiny_registry: Path) -> None:
    from dwp_hub.card import PriorCard

    res = _run("info", "tiny-5x5@1.0.0", "--json")
    assert res.exit_code == 0, res.output
    card = PriorCard.from_json(res.stdout)
    assert card.spec == "tiny-5x5@1.0.0" and card.arch.kind == "conv5"


def test_sample_png(tiny_registry: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "grid.png"
    res = _run("sample", "tiny-3x3", "--n", "16", "--out", str(out), "--seed", "3")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Wrote 16 kernels from tiny-3x3@1.0.0" in res.stdout
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # parent created, no temp leftovers


def test_sample_safetensors(tiny_registry: Path, tmp_path: Path) -> None:
    import dwp_hub

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert _run("sample", "tiny-7x7@1.0.0", "-n", "10", "-o", str(a), "--seed", "4").exit_code == 0
    assert _run("sample", "tiny-7x7@1.0.0", "-n", "10", "-o", str(b), "--seed", "4", "--noise").exit_code == 0
    ka, kb = load_file(str(a))["kernels"], load_file(str(b))["kernels"]
    assert ka.shape == kb.shape == (10, 1, 7, 7) and not torch.equal(ka, kb)
    prior = dwp_hub.load("tiny-7x7@1.0.0")
    assert torch.equal(ka, prior.sample(10, generator=torch.Generator().manual_seed(4), noise=False))
    from safetensors import safe_open

    with safe_open(str(a), framework="pt") as fh:  # the file says where its kernels came from
        assert fh.metadata() == {"prior": "tiny-7x7@1.0.0", "seed": "4"}


def test_sample_bad_n(tiny_registry: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["sample", "tiny-3x3", "--n", "0", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and not (tmp_path / "x.png").exists()
    assert "--n" in " ".join(res.output.split())  # the message names the option


def test_verify_ok(only_tiny: Path) -> None:
    res = _run("verify")
    assert res.exit_code == 0, res.output
    assert res.stdout.count("OK") == 4 and "tiny-7x7@1.0.0" in res.stdout
    res = _run("verify", "tiny-5x5")
    assert res.exit_code == 0 and res.stdout.count("OK") == 1


def test_verify_fail_after_tampering(only_tiny: Path) -> None:
    tiny_registry = only_tiny
    weights = tiny_registry / "tiny-7x7" / "1.0.0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    res = _run("verify")
    assert res.exit_code == 1
    assert "FAIL" in res.stderr and "tiny-7x7@1.0.0" in res.stderr and "model.safetensors" in res.stderr
    assert res.stdout.count("OK") == 3  # the others still checked
    assert _run("verify", "tiny-7x7@1.0.0").exit_code == 1
    assert _run("verify", "tiny-7x7").exit_code == 0  # 1.1.0 is intact
    (tiny_registry / "tiny-5x5" / "1.0.0" / "README.md").unlink()
    res = _run("verify", "tiny-5x5")
    assert res.exit_code == 1 and "README.md" in res.stderr


def test_verify_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dwp_hub import constants

    monkeypatch.setattr(constants, "embedded_registry", lambda: tmp_path / "empty")
    res = _run("verify")
    assert res.exit_code == 0 and "No priors to verify" in res.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["info", "../etc/passwd"], "path separators"), (["info", "tiny-7x8"], "Did you mean tiny-7x7"),
    (["info", "tiny-7x7@1.0"], "MAJOR.MINOR.PATCH"),
    (["info", "tiny-7x7@9.0.0"], "no version 9.0.0; available: 1.0.0, 1.1.0"),
    (["sample", "nope", "--out", "x.png"], "'nope'"), (["verify", "Bad/Name"], "not a prior name"),
])
def test_bad_input_exits_1_without_traceback(tiny_registry: Path, args: list[str], says: str) -> None:
    res = runner.invoke(app, args, env={"COLUMNS": "400"})
    assert res.exit_code == 1, res.output
    assert "Error:" in res.stderr and "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert says in " ".join(res.stderr.split()), res.stderr


def test_debug_shows_traceback(tiny_registry: Path) -> None:
    from dwp_hub.cli import _errors
    from dwp_hub.errors import PriorNotFoundError

    try:
        res = runner.invoke(app, ["--debug", "info", "tiny-7x8"])
    finally:
        _errors._state["debug"] = False
    assert res.exit_code == 1 and isinstance(res.exception, PriorNotFoundError)
    res = runner.invoke(app, ["info", "tiny-7x8"], env={"DWP_HUB_DEBUG": "1"})
    assert isinstance(res.exception, PriorNotFoundError)
    # In a real process the traceback is printed.
    proc = subprocess.run([sys.executable, "-c", "from dwp_hub.cli import main; main()", "--debug", "info", "tiny-7x8"],
                          capture_output=True, text=True, check=False, env={**os.environ}, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "PriorNotFoundError" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "from dwp_hub.cli import main; main()", "info", "tiny-7x8"],
                          capture_output=True, text=True, check=False, env={**os.environ}, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "Did you mean tiny-7x7" in proc.stderr


_NO_TORCH = """
import sys
{body}
heavy = sorted(m for m in ("torch", "torchvision", "numpy", "safetensors.torch", "matplotlib", "huggingface_hub")
               if m in sys.modules)
assert not heavy, heavy
"""


@pytest.mark.parametrize("body", [
    "import dwp_hub.cli._app",
    "import dwp_hub, dwp_hub.cli; dwp_hub.list_priors()",
    "from dwp_hub.cli import app; app(['list'], standalone_mode=False); app(['list', '--json'], standalone_mode=False)",
    "from dwp_hub.cli import app; app(['info', 'tiny-7x7'], standalone_mode=False); app(['info', 'tiny-3x3', '--json'], standalone_mode=False)",
    "from dwp_hub.cli import app; app(['info', 'notmnist-7x7', '--recipe'], standalone_mode=False)",
], ids=["import", "list_priors", "list", "info", "info_recipe"])
def test_list_and_info_do_not_import_torch(tiny_registry: Path, body: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH.format(body=body)], capture_output=True, text=True, check=False,
                          env={**os.environ}, timeout=120)
    assert proc.returncode == 0, proc.stderr


# -- issue 16: output targets, seeds and memory of sample (items 8, 10, 13) ------------------------------------
def test_sample_refuses_non_regular_out(tiny_registry: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    for target in (str(tmp_path), str(fifo), "/dev/null", "/proc/self/comm", "", str(tmp_path / "a-file" / "x.png")):
        (tmp_path / "a-file").write_text("x")
        res = runner.invoke(app, ["sample", "tiny-3x3", "--out", target])
        assert res.exit_code == 2, (target, res.output)
        assert "Error:" in res.stderr and "Traceback" not in res.output
    assert fifo.is_fifo() and os.path.exists("/dev/null") and (tmp_path / "a-file").read_text() == "x"


def test_sample_huge_seed_is_a_usage_error(tiny_registry: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["sample", "tiny-3x3", "--seed", str(2**70), "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "Traceback" not in res.output and not (tmp_path / "x.png").exists()
    assert "--seed" in " ".join(res.output.split())


def test_sample_seed_range_is_what_a_torch_generator_takes(tiny_registry: Path, tmp_path: Path) -> None:
    """--seed takes 0 .. 2**63 - 1; one past either end is a usage error (exit 2) that writes nothing."""
    from dwp_hub.cli._options import MAX_SEED

    assert MAX_SEED == 2**63 - 1
    for seed in (-1, 2**63):
        out = tmp_path / f"bad{seed}.npy"
        res = runner.invoke(app, ["sample", "tiny-3x3", "-n", "1", "--seed", str(seed), "--out", str(out)])
        assert res.exit_code == 2 and "--seed" in " ".join(res.output.split()) and not out.exists(), seed
    out = tmp_path / "edge.npy"
    assert _run("sample", "tiny-3x3", "-n", "2", "--seed", str(2**63 - 1), "--out", str(out)).exit_code == 0
    assert out.stat().st_size > 0


def test_sample_large_n_is_chunked_and_the_picture_bounded(tiny_registry: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import dwp_hub
    from dwp_hub.cli import _registry as _app
    from dwp_hub.model.prior import DeepWeightPrior

    sizes: list[int] = []
    real = DeepWeightPrior.sample

    def spy(self, n, *a, **k):  # type: ignore[no-untyped-def]
        sizes.append(int(n))
        return real(self, n, *a, **k)

    monkeypatch.setattr(DeepWeightPrior, "sample", spy)
    out = tmp_path / "k.safetensors"
    n = 2 * _app.SAMPLE_CHUNK + 5
    assert _run("sample", "tiny-3x3", "-n", str(n), "-o", str(out), "--seed", "1").exit_code == 0
    assert max(sizes) == _app.SAMPLE_CHUNK and sum(sizes) == n
    assert load_file(str(out))["kernels"].shape == (n, 1, 3, 3)
    sizes.clear()
    res = _run("sample", "tiny-3x3", "-n", "100000", "-o", str(tmp_path / "g.png"))
    assert res.exit_code == 0 and sum(sizes) == _app.MAX_PICTURE_KERNELS and "shows the first" in res.stdout
    monkeypatch.setattr(DeepWeightPrior, "sample", real)
    first = dwp_hub.load("tiny-3x3").sample(_app.SAMPLE_CHUNK, generator=torch.Generator().manual_seed(1), noise=False)
    assert torch.equal(load_file(str(out))["kernels"][: _app.SAMPLE_CHUNK], first)  # seeded, chunk by chunk


def test_info_says_metrics_are_unverified(tiny_registry: Path) -> None:
    """Issue 16 item 15: info reads the card without hashing and says so."""
    res = _run("info", "tiny-3x3")
    assert res.exit_code == 0 and "unverified" in res.stdout and "dwp-hub verify tiny-3x3" in res.stdout
