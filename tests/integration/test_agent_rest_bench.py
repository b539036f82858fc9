"""The agent REST benchmark runs end to end on a few requests (slow: a provider, two agents from two revisions
and two alignments; run with -m slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_agent_rest_benchmark_measures_both_agents(tmp_path: Path, datasets_dir: Path) -> None:
    out, doc = tmp_path / "agent_rest.json", tmp_path / "agent_rest.md"
    env = dict(os.environ, HELIX_DATASETS=str(datasets_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.agent_rest", "--requests", "4", "--out", str(out), "--doc", str(doc)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for name in ("baseline", "today"):
        wall = result["agents"][name]["rest_wall"]
        assert wall["runs"] == 4 and 0 < wall["p50_ms"] <= wall["max_ms"]
    assert result["ratio_p50_wall"] > 0 and "baseline / today" in doc.read_text()
