"""The benchmark suite's quick mode end to end, in a subprocess, writing only into tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_and_reports_ratios(tmp_path: Path) -> None:
    out, doc = tmp_path / "results.json", tmp_path / "benchmarks.md"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out), "--doc", str(doc)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    res = json.loads(out.read_text())
    for section in ("machine", "config", "linear_head", "alignment", "key_material", "mode", "timestamp_utc"):
        assert section in res, section
    assert res["mode"] == "quick"
    for key in ("cpu_count", "python", "tenseal"):
        assert res["machine"][key]

    heads = res["linear_head"]
    assert {(r["d"], r["k"]) for r in heads} == {(384, 2), (384, 4), (768, 2), (768, 4)}
    for r in heads:
        assert r["ours"]["provider"]["runs"] >= 5
        assert 0 < r["ours"]["provider"]["p50_ms"] <= r["ours"]["provider"]["p95_ms"]
        assert r["ours"]["bytes_up"] > 0 and r["ours"]["bytes_down"] > 0
        assert r["ours"]["max_abs_error"] < 1e-3
    compared = [r for r in heads if r["baseline"] is not None]
    assert {(r["d"], r["k"]) for r in compared} == {(384, 2), (768, 2)}
    for r in compared:
        assert r["speedup_provider_p50"] > 0
        assert r["baseline"]["max_abs_error"] < 1e-3
        assert r["baseline"]["bytes_up"] > 0

    (case,) = res["alignment"]
    assert (case["n"], case["d_B"], case["d_A"]) == (1024, 256, 384)
    assert case["ours"]["max_abs_error"] < 1e-3
    assert case["ours"]["total_s"] > 0 and case["ours"]["bytes_up"] > 0
    for name in ("sample_major", "one_dot_per_output"):
        base = case["baseline"][name]
        assert base["extrapolated"] is True
        assert base["measured_slice"]["max_abs_error"] < 1e-3
        assert base["total_s"] > 0
    assert case["speedup_total_vs_sample_major_extrapolated"] > 0
    assert case["speedup_total_vs_one_dot_extrapolated"] > 0

    batch = res["batch"]
    assert batch["ours"]["queries"] == 512 and batch["ours"]["max_abs_error"] < 1e-4
    assert batch["ours"]["bytes_up_per_query"] < batch["per_query_path"]["bytes_up_per_query"]
    assert batch["speedup_throughput"] > 0
    assert [c["workers"] for c in res["concurrency"]] == [1, 2]
    assert all(c["queries_per_s"] > 0 for c in res["concurrency"])
    flood = {f["bits"]: f for f in res["noise_flooding"]}
    assert (
        flood[36]["max_abs_error"] <= flood[36]["bound"] * 1.01
        and flood[36]["max_abs_error"] > flood[0]["max_abs_error"]
    )

    keys = res["key_material"]
    # Alignment keys carry the packing tree's Galois keys (5 at d_B = 256): a few MB, not TenSEAL's 33.7 MB.
    assert 0 < keys["ours_galois_key_bytes"] < 8 * 1024 * 1024
    assert case["ours"]["result_ciphertexts"] == 384 // case["ours"]["samples_per_ciphertext"]
    assert keys["ours_public_key_bytes"] > 0
    assert keys["ratio_tenseal_context_to_ours"] > 0

    text = doc.read_text()
    assert "python -m benchmarks" in text and "How to read" in text and "extrapolated" in text
    assert "feature-major batch" in text and "16 concurrent clients" in text and "noise flooding" in text

    # The report degrades gracefully without matplotlib: plot skipped, with a note in the markdown.
    script = (
        "import json, sys\n"
        "sys.modules['matplotlib'] = None\n"
        "from pathlib import Path\n"
        "from benchmarks.report import write_report\n"
        f"res = json.loads(Path({str(out)!r}).read_text())\n"
        f"note = write_report(res, Path({str(tmp_path / 'nomatplotlib.md')!r}), "
        f"Path({str(tmp_path / 'none.png')!r}), None)\n"
        "assert note and 'matplotlib' in note, note\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plot skipped" in (tmp_path / "nomatplotlib.md").read_text()
    assert not (tmp_path / "none.png").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert (tmp_path / "benchmarks-latency.png").stat().st_size > 0
