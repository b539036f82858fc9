"""The contention benchmark runs end to end on a few requests (slow: two providers and four agents from two
revisions; run with -m slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_contention_benchmark_measures_idle_and_busy_on_both_systems(tmp_path: Path, datasets_dir: Path) -> None:
    out, doc = tmp_path / "contention.json", tmp_path / "contention.md"
    env = dict(os.environ, HELIX_DATASETS=str(datasets_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.contention", "--quick", "--out", str(out), "--doc", str(doc)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("baseline", "today"):
        system = result["systems"][name]
        assert system["idle"]["runs"] == 10 and system["during_alignments"]["runs"] == 10
        assert system["alignments_started"] >= 1 and system["ratio_p99_busy_over_idle"] > 0
    assert "p99 busy / idle" in doc.read_text()
