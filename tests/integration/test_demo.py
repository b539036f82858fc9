"""The README's first command, at toy sizes: both services as real processes, full report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helix_demo.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def datasets_dir() -> Path:
    return Path(os.environ.get("HELIX_DATASETS", REPO.parent / "shared" / "datasets")).resolve()


@pytest.mark.skipif(not (datasets_dir() / "sst2").exists(), reason="shared datasets not present")
def test_demo_runs_end_to_end_and_reports_every_figure(tmp_path: Path) -> None:
    report_path = tmp_path / "demo-report.json"
    report = main(
        [
            "--datasets-dir",
            str(datasets_dir()),
            "--work-dir",
            str(tmp_path / "work"),
            "--corpus-size",
            "300",
            "--client-embedder",
            "wordllama?dim=128",  # 300 + 64 samples satisfy n >= 2 (D + 1) at D = 128, not at the default 256
            "--train-limit",
            "300",
            "--test-limit",
            "60",
            "--latency-samples",
            "3",
            "--workers",
            "2",
            "--report",
            str(report_path),
        ]
    )
    on_disk = json.loads(report_path.read_text())
    assert on_disk["heads"].keys() == {"sst2", "ag_news"}
    for head in on_disk["heads"].values():
        assert head["test_examples"] == 60
        assert head["encrypted_vs_plaintext_agreement"] == 1.0
        assert head["max_abs_logit_error"] < 1e-3
        assert head["helix_encrypted_accuracy"] == head["plaintext_mapped_accuracy"]
        assert 0.0 <= head["provider_native_accuracy"] <= 1.0
        assert head["latency_samples"] == 3 and head["latency_ms_p95"] >= head["latency_ms_p50"] > 0
        # One 24.6 kB query up and one 14.9 kB reply down: the heads are offered under ckks-n4096-q47 first.
        assert 30_000 < head["bytes_per_query"] <= 40_000
        assert head["alignment_samples"] == 300 + 64 and head["alignment_bytes_sent"] > 0
    assert report["total_seconds"] > 0
