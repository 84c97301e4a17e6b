"""tools/bench_resnet18_vi.py: one short run writes the three timed steps, the conversion time and the targets."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert re.search(r"conversion under 1 s: (met|MISSED); deep-weight-prior step at most 2x the standard-normal "
                     r"step: [\d.]+x, (met|MISSED)\.", text)
    assert "converted 21 conv layer(s), left 0 deterministic" in text
