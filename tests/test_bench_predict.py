"""tools/bench_predict.py: a short run writes the timed rows, the memory rows of two K (both measures) and the
targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tools_package  # noqa: F401 - makes `import tools` work

from tools import bench_predict


def test_short_run_reports_time_memory_and_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DWP_HUB_DATA", raising=False)  # random images: no data needed
    out = tmp_path / "p.md"
    assert bench_predict.main(["--n", "100", "--batch-size", "50", "--rounds", "2", "--memory-samples", "1,2",
                               "--out", str(out)]) == 0
    text = out.read_text()
    assert "100 random 28x28 images" in text
    assert re.search(r"^\| 10 deterministic forward passes \| [\d.]+ \| 1\.00 \|$", text, flags=re.M)
    assert re.search(r"^\| `predict\(samples=10\)`.* \| [\d.]+ \| [\d.]+ \|$", text, flags=re.M)
    assert re.search(r"^\| `predict\(samples=10, sampling='local'\)`.* \| [\d.]+ \| [\d.]+ \|$", text, flags=re.M)
    assert [int(k) for k in re.findall(r"^\| (\d+) \| [\d.]+ \| [\d.]+ \|$", text, flags=re.M)] == [1, 2]
    rows = re.findall(r"^\| (10 deterministic|`predict\(samples=10\)`|`predict\(samples=10, sampling='local'\)`)"
                      r".* \| ([\d.]+) \| ([\d.]+) \|$", text, flags=re.M)
    seconds = {name: (float(sec), float(ratio)) for name, sec, ratio in rows}
    assert len(seconds) == 3
    det = seconds["10 deterministic"][0]
    for sec, ratio in seconds.values():  # each ratio is this run's time over this run's deterministic time
        assert ratio == pytest.approx(sec / det, abs=0.006 + 0.0005 * (1 / det + sec / det**2))
    memory = {int(k): float(fixed) for k, _, fixed in re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", text,
                                                                  flags=re.M)}
    target = re.search(r"predict under 2x the deterministic passes: ([\d.]+)x, (met|MISSED); peak memory independent "
                       r"of K \(live tensors, K=2 / K=1\): ([\d.]+), (met|MISSED) \(within 10%\)\.", text)
    assert target is not None
    assert float(target[1]) == seconds["`predict(samples=10)`"][1]  # the target reads the table's own ratio
    assert target[2] == ("met" if float(target[1]) < 2 else "MISSED")
    mem = float(target[3])
    assert mem == pytest.approx(memory[2] / memory[1], abs=0.006 + 0.05 * (1 / memory[1] + memory[2] / memory[1] ** 2))
    assert target[4] == ("met" if abs(mem - 1) <= 0.10 else "MISSED")
    assert not out.with_suffix(".md.tmp").exists()
