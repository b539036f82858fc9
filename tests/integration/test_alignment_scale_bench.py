"""The big-alignment benchmark runs end to end on 512 texts, local and on a Ray cluster of its own (slow:
it starts Ray and loads MiniLM; run with -m slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_alignment_scale_benchmark_measures_both_executors(tmp_path: Path, datasets_dir: Path) -> None:
    out, doc = tmp_path / "alignment_scale.json", tmp_path / "alignment_scale.md"
    env = dict(os.environ, HELIX_DATASETS=str(datasets_dir))
    cmd = [sys.executable, "-m", "benchmarks.alignment_scale", "--quick", "--out", str(out), "--doc", str(doc)]
    proc = subprocess.run(
        [*cmd, "--cache-dir", str(tmp_path / "cache")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (size,) = json.loads(out.read_text())["sizes"]
    assert size["texts"] == 512 and size["feature_dim"] == 384 and size["embedding_measured"]
    for name in ("local", "ray"):
        phases = size["phases_s"][name]
        assert all(phases[k] > 0 for k in ("embed", "encrypt", "provider")), phases
        assert size["max_abs_error"][name] < 1e-4  # both paths decrypt to X^T Y
    assert size["per_shard_s"]["provider_partial"]["seconds"] > 0
    assert "Projection, 10 nodes" in doc.read_text()
