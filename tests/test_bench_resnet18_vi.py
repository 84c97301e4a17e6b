"""tools/bench_resnet18_vi.py: one short run writes the three timed steps, the conversion time and the targets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tools_package  # noqa: F401 - makes `import tools` work

from tools import bench_resnet18_vi


def test_short_run_reports_steps_conversion_and_targets(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    assert bench_resnet18_vi.main(["--threads", "1", "--batch", "2", "--rounds", "2", "--steps", "1",
                                   "--out", str(out)]) == 0
    text = out.read_text()
    rows = re.findall(r"^\| (deterministic|VI, standard normal everywhere|VI, cifar10-3x3)[^|]* \| ([\d.]+) \|", text,
                      flags=re.M)
    assert [r[0] for r in rows] == ["deterministic", "VI, standard normal everywhere", "VI, cifar10-3x3"]
    assert all(float(ms) > 0 for _, ms in rows)
    assert re.search(r"Conversion \(`to_bayesian`.*\): \d+ ms \(median of 1\)", text)
    table = {m[0]: [float(v) for v in m[1:]] for m in re.findall(
        r"^\| (deterministic|VI, standard normal everywhere|VI, cifar10-3x3)[^|]* \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
        text, flags=re.M)}
    det, sn, dwp = (table[k][0] for k in ("deterministic", "VI, standard normal everywhere", "VI, cifar10-3x3"))
    for ms, to_det, to_sn in table.values():  # each ratio is this run's ms over this run's baseline ms
        assert to_det == pytest.approx(ms / det, abs=0.006 + 0.05 * (1 / det + ms / det**2))
        assert to_sn == pytest.approx(ms / sn, abs=0.006 + 0.05 * (1 / sn + ms / sn**2))
    target = re.search(r"conversion under 1 s: (met|MISSED); deep-weight-prior step at most 2x the standard-normal "
                       r"step: ([\d.]+)x, (met|MISSED)\.", text)
    assert target is not None
    conversion_ms = int(re.search(r"Conversion \(`to_bayesian`.*\): (\d+) ms", text)[1])
    assert target[1] == ("met" if conversion_ms < 1000 else "MISSED")
    assert float(target[2]) == table["VI, cifar10-3x3"][2]  # the target reads the table's own ratio
    assert target[3] == ("met" if float(target[2]) <= 2 else "MISSED") and dwp > 0
    assert "converted 21 conv layer(s), left 0 deterministic" in text
