"""The replica benchmark runs end to end on a short measurement (slow: three providers and HAProxy are
started; run with -m slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_replica_benchmark_measures_one_two_and_three_replicas(tmp_path: Path, datasets_dir: Path) -> None:
    out = tmp_path / "replicas.json"
    env = dict(os.environ, HELIX_DATASETS=str(datasets_dir))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.replicas", "--quick", "--out", str(out), "--doc", ""],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert sorted(result["replicas"]) == ["1", "2", "3"]
    for count, entry in result["replicas"].items():
        assert entry["requests"] > 0 and entry["errors"] == 0 and entry["queries_per_s"] > 0
        served = entry["served_by"]
        assert len(served) == int(count) and all(n > 0 for n in served.values()), f"a replica served nothing: {served}"
    assert "| replicas |" in proc.stdout
