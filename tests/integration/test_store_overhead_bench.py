"""The Store overhead benchmark runs end to end on a few requests: the raw-sqlite3 Store of the baseline
revision, and this tree's Store on SQLite and on a private PostgreSQL server (slow; run with -m slow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_store_overhead_benchmark_measures_three_systems(tmp_path: Path) -> None:
    out, doc = tmp_path / "store.json", tmp_path / "store.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.store_overhead", "--quick", "--out", str(out), "--doc", str(doc)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["systems"]) == {"baseline_sqlite3", "sqlalchemy_sqlite", "sqlalchemy_postgresql"}
    for system in result["systems"].values():
        assert system["per_request"]["runs"] == 200 and system["per_request"]["p50_ms"] > 0
        assert set(system["per_call"]) == {"get_api_key", "get_tenant", "get_head", "get_key", "admit", "append_audit"}
        assert system["threaded_requests_per_s"] > 0
    assert "per request, p50" in doc.read_text()
