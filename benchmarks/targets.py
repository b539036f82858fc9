"""The performance targets table (today's default path, the 4096-ring path, TenSEAL), from one run's results
plus the two benchmarks that run daemons (`benchmarks.agent_rest`, `benchmarks.contention`), if their
results are present beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TARGET_BYTES = 40_000
TARGET_PROVIDER_MS = 0.4
TARGET_REST_P50_MS, TARGET_REST_P95_MS = 6.0, 12.0
TARGET_BATCH_QPS = 20_000
TARGET_ALIGNMENT_S = 2.5
TARGET_CONTENTION_RATIO = 2.0


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**not met**")


def render_targets(results: dict[str, Any], results_dir: Path | None) -> list[str]:
    out: list[str] = []
    w = out.append
    w("## 0. Targets of the performance round\n")
    w(
        "Each row: today's default path (`ckks-n8192-q200`), the 4096-ring path heads are offered under first "
        "when they fit (`ckks-n4096-q47`: one 47-bit prime, replies switched down to 2^29, a reserve of "
        "encryptions of zero made by idle workers), and TenSEAL where it applies, all from this run unless "
        "the row names another benchmark.\n"
    )
    w("| measure | target | today's default path | 4096-ring path | TenSEAL | status |")
    w("|---|---:|---:|---:|---:|---|")
    rows = results["linear_head"]
    small_rows = [r for r in rows if "ours_small" in r]
    one_reply = [r for r in small_rows if r["ours_small"]["reply_ciphertexts"] == 1 and r["d"] <= 2048]
    if one_reply:
        worst = max(one_reply, key=lambda r: r["ours_small"]["bytes_up"] + r["ours_small"]["bytes_down"])
        sb = worst["ours_small"]["bytes_up"] + worst["ours_small"]["bytes_down"]
        tb = worst["ours"]["bytes_up"] + worst["ours"]["bytes_down"]
        base = worst["baseline"]
        bb = f"{base['bytes_up'] + base['bytes_down']:,} B" if base else "–"
        w(
            f"| bytes per single query, up + down (largest over d ≤ 2048 with one reply; here d={worst['d']}, "
            f"k={worst['k']}) | ≤ {TARGET_BYTES:,} B | {tb:,} B | **{sb:,} B** | {bb} | {_mark(sb <= TARGET_BYTES)} |"
        )
    fit = [r for r in small_rows if r["d"] * r["k"] <= 4096]
    if fit:
        warm = max(r["ours_small"]["provider"]["p50_ms"] for r in fit)
        cold = max(r["ours_small_no_reserve"]["provider"]["p50_ms"] for r in fit)
        today = max(r["ours"]["provider"]["p50_ms"] for r in fit)
        ts = [r["baseline"]["provider"]["p50_ms"] for r in fit if r["baseline"]]
        refill = [r["ours_small"]["refill_ms_per_query"] for r in fit if r["ours_small"]["refill_ms_per_query"]]
        w(
            f"| provider HE p50, one query, d·k ≤ 4096 (max over {len(fit)} points) | ≤ {TARGET_PROVIDER_MS} ms | "
            f"{today:.2f} ms | **{warm:.2f} ms** with the reserve ({cold:.2f} ms without; "
            f"{max(refill, default=0.0):.2f} ms of idle-time work per query) | "
            f"{(f'{min(ts):,.0f}-{max(ts):,.0f} ms') if ts else '–'} | {_mark(warm <= TARGET_PROVIDER_MS)} |"
        )
    rest = _load(results_dir / "agent_rest.json") if results_dir else None
    if rest and "today" in rest.get("agents", {}):
        t = rest["agents"]["today"]["rest_wall"]
        b = rest["agents"]["baseline"]["rest_wall"]
        ok = t["p50_ms"] <= TARGET_REST_P50_MS and t["p95_ms"] <= TARGET_REST_P95_MS
        w(
            f"| agent REST classify p50 / p95 over loopback HTTPS (`benchmarks.agent_rest`, its own run; baseline "
            f"revision {rest['baseline_commit'][:8]}) | ≤ {TARGET_REST_P50_MS:.0f} / {TARGET_REST_P95_MS:.0f} ms | "
            f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f} ms | **{t['p50_ms']:.1f} / {t['p95_ms']:.1f} ms** | – | "
            f"{_mark(ok)} |"
        )
    bt = results.get("batch", {})
    if "ours_small" in bt:
        q0, q1 = bt["ours"]["queries_per_s"], bt["ours_small"]["queries_per_s"]
        w(
            f"| batch throughput, d=384, k=4, {bt['ours']['queries']} queries (encrypt + provider + decrypt) | "
            f"≥ {TARGET_BATCH_QPS:,} q/s | {q0:,.0f} q/s | **{q1:,.0f} q/s** | – | {_mark(q1 >= TARGET_BATCH_QPS)} |"
        )
    al = [c for c in results.get("alignment", []) if (c["n"], c["d_B"], c["d_A"]) == (4096, 384, 384)]
    if al:
        s = al[0]["ours"]["total_s"]
        small = al[0].get("ours_small")
        sm = al[0]["baseline"]["sample_major"]["total_s"]
        best = small["total_s"] if small else s
        w(
            f"| secure alignment, n=4096, d_B=d_A=384 (HE part: client encrypt + provider + client decrypt) | "
            f"≤ {TARGET_ALIGNMENT_S} s | {s:.1f} s | "
            + (f"**{small['total_s']:.1f} s** (`ckks-n4096-q109`)" if small else "–")
            + f" | {sm:,.0f} s (extrapolated) | {_mark(best <= TARGET_ALIGNMENT_S)} |"
        )
    cont = _load(results_dir / "contention.json") if results_dir else None
    if cont and {"baseline", "today"} <= set(cont.get("systems", {})):
        base_c, today_c = cont["systems"]["baseline"], cont["systems"]["today"]
        ratio = today_c["ratio_p99_busy_over_idle"]
        w(
            "| classify p99 while alignments run, over idle p99 (`benchmarks.contention`, its own run; baseline "
            f"revision {cont['baseline_commit'][:8]}) | ≤ 2× | {base_c['ratio_p99_busy_over_idle']:.1f}× | "
            f"**{ratio:.2f}×** ({today_c['during_alignments']['p99_ms']:.1f} vs {today_c['idle']['p99_ms']:.1f} ms) "
            f"| – | {_mark(ratio <= TARGET_CONTENTION_RATIO)} |"
        )
    w("")
    return out
