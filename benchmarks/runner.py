"""One benchmark run: both our paths and the baseline, on the same inputs, in one process."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from helix_he.packing import next_pow2
from helix_he.suitability import suitable_parameter_sets
from provider_server.workers.refill import RESERVE_PER_KEY

from . import SCHEMA_VERSION, baseline, ours
from .config import PARAMETER_SET, SMALL_ALIGNMENT_PARAMETER_SET, SMALL_PARAMETER_SET, AlignmentCase, Mode


def machine_info() -> dict[str, Any]:
    import tenseal

    from helix_he import modmath

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        affinity = None
    cpu_model = platform.processor() or None
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tenseal": tenseal.__version__,
        "native_ntt_kernel": modmath._KERNEL is not None,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _inputs_head(seed: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit-norm query (as sentence embeddings and their maps are) and logits of order 1."""
    rng = np.random.default_rng([seed, d, k])
    w = rng.normal(size=(d, k))
    b = rng.normal(size=k)
    x = rng.normal(size=d)
    return x / np.linalg.norm(x), w, b


def _inputs_alignment(seed: int, case: AlignmentCase) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, case.num_samples, case.client_dim, case.provider_dim])
    x = rng.uniform(-1.0, 1.0, size=(case.num_samples, case.client_dim))  # the client sends |x| <= 1
    y = rng.normal(size=(case.num_samples, case.provider_dim))
    return x, y


def run(
    mode: Mode, *, seed: int = 0, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)
) -> dict[str, Any]:
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    machine = machine_info()
    log(f"[bench] mode={mode.name} cpus={machine['cpu_count']} load={machine['load_average_at_start']}")

    party = ours.OurParty(PARAMETER_SET)
    small = ours.OurParty(SMALL_PARAMETER_SET, reserve=RESERVE_PER_KEY)
    small_cold = ours.OurParty(SMALL_PARAMETER_SET)
    align_small = ours.OurParty(SMALL_ALIGNMENT_PARAMETER_SET)
    ctx, ts_info = baseline.make_context()
    log(
        f"[bench] keys ready: our public key {party.setup['public_key_bytes']} B, TenSEAL public context "
        f"{ts_info['public_context_with_galois_bytes']} B"
    )

    # 1. encrypted linear head ------------------------------------------------------------------
    rows = []
    for d, k in mode.head_grid:
        x, w, b = _inputs_head(seed, d, k)
        mine = ours.linear_head(party, x, w, b, mode.head_runs)
        row: dict[str, Any] = {"d": d, "k": k, "ours": mine, "baseline": None, "speedup_provider_p50": None}
        if SMALL_PARAMETER_SET in suitable_parameter_sets(
            [SMALL_PARAMETER_SET], w, b, max_query_norm=2.0, pairwise=False
        ):
            row["ours_small"] = ours.linear_head(small, x, w, b, mode.head_runs)
            row["ours_small_no_reserve"] = ours.linear_head(small_cold, x, w, b, mode.head_runs)
        if (d, k) in mode.baseline_grid:
            base = baseline.linear_head(ctx, x, w, b, mode.baseline_runs)
            row["baseline"] = base
            row["speedup_provider_p50"] = base["provider"]["p50_ms"] / mine["provider"]["p50_ms"]
            ours_e2e = sum(mine[p]["p50_ms"] for p in ("client_encrypt", "provider", "client_decrypt"))
            base_e2e = sum(base[p]["p50_ms"] for p in ("client_encrypt", "provider", "client_decrypt"))
            row["speedup_end_to_end_p50"] = base_e2e / ours_e2e
            row["bytes_up_ratio"] = base["bytes_up"] / mine["bytes_up"]
            row["bytes_down_ratio"] = base["bytes_down"] / mine["bytes_down"]
        rows.append(row)
        msg = f"[bench] head d={d} k={k}: ours p50 {mine['provider']['p50_ms']:.1f} ms"
        if "ours_small" in row:
            sm = row["ours_small"]
            msg += (
                f"; {SMALL_PARAMETER_SET} p50 {sm['provider']['p50_ms']:.2f} ms "
                f"({sm['bytes_up'] + sm['bytes_down']} B up+down)"
            )
        if row["baseline"] is not None:
            msg += f", TenSEAL p50 {row['baseline']['provider']['p50_ms']:.0f} ms, x{row['speedup_provider_p50']:.0f}"
        log(msg)

    # 1b. feature-major batch vs the per-query path, flooding cost, concurrency ------------------
    rng = np.random.default_rng([seed, 4096])
    bw = rng.normal(size=(384, 4)) / np.sqrt(384)
    bb = rng.normal(size=4)
    bx = rng.normal(size=(mode.batch_queries, 384)) / np.sqrt(384)
    batch = ours.batch(party, bx, bw, bb, mode.batch_runs)
    batch_small = ours.batch(small_cold, bx, bw, bb, mode.batch_runs)
    single = ours.per_query_throughput(party, bx[:64], bw, bb)
    batch_section: dict[str, Any] = {
        "ours": batch,
        "ours_small": batch_small,
        "speedup_small_over_default": batch_small["queries_per_s"] / batch["queries_per_s"],
        "per_query_path": single,
        "speedup_throughput": batch["queries_per_s"] / single["queries_per_s"],
    }
    log(
        f"[bench] batch of {batch['queries']}: {batch['queries_per_s']:.0f} q/s, "
        f"{batch['bytes_up_per_query']:.0f} B up per query; per-query path {single['queries_per_s']:.0f} q/s; "
        f"{SMALL_PARAMETER_SET}: {batch_small['queries_per_s']:.0f} q/s"
    )
    flooding = [ours.noise_flooding_cost(party, bx[:50], bw, bb, bits) for bits in (0, 20, 28, 36)]
    cx = bx[: mode.concurrency_queries]
    concurrency = [ours.concurrent_throughput(party, cx, bw, bb, workers) for workers in (1, 2)]
    log(
        f"[bench] 16 clients: {concurrency[0]['queries_per_s']:.0f} q/s with 1 worker, "
        f"{concurrency[1]['queries_per_s']:.0f} q/s with 2"
    )

    # 2. secure alignment, HE part --------------------------------------------------------------
    cases = []
    for case in mode.alignment:
        x, y = _inputs_alignment(seed, case)
        mine = ours.alignment(party, case, x, y, mode.alignment_runs)
        mine_small = (
            ours.alignment(align_small, case, x, y, mode.alignment_runs)
            if 2 * next_pow2(case.client_dim) <= align_small.he.n
            else None
        )
        naive = baseline.alignment_naive(ctx, case, x, y, mode.naive_slice, mode.naive_reps)
        sm = naive["sample_major"]
        cases.append(
            {
                "n": case.num_samples,
                "d_B": case.client_dim,
                "d_A": case.provider_dim,
                "full_size_only_with_flag": case.num_samples >= 16384,
                "ours": mine,
                "ours_small": mine_small,
                "baseline": naive,
                "speedup_total_vs_sample_major_extrapolated": sm["total_s"] / mine["total_s"],
                "speedup_provider_vs_sample_major_extrapolated": sm["provider_s"] / mine["provider_s"],
                "speedup_total_vs_one_dot_extrapolated": naive["one_dot_per_output"]["total_s"] / mine["total_s"],
                "bytes_up_ratio_vs_sample_major": sm["bytes_up"] / mine["bytes_up"],
            }
        )
        small_note = f", {SMALL_ALIGNMENT_PARAMETER_SET} {mine_small['total_s']:.1f} s" if mine_small else ""
        log(
            f"[bench] alignment {case.label()}: ours {mine['total_s']:.1f} s{small_note}, naive sample-major "
            f"(extrapolated) {sm['total_s']:.0f} s"
        )
        del x, y

    # 3. key material ---------------------------------------------------------------------------
    pk = party.setup["public_key_bytes"]
    # Alignment keys add the packing tree's Galois keys (one per tree level; the largest case's set).
    gk = max((c["ours"]["galois_key_bytes"] for c in cases), default=0)
    keys = {
        "ours_public_key_bytes": pk,
        "ours_galois_key_bytes": gk,
        "ours_alignment_key_bytes": pk + gk,
        "ours_relin_key_bytes": 0,
        "tenseal_public_context_with_galois_bytes": ts_info["public_context_with_galois_bytes"],
        "tenseal_public_context_without_galois_bytes": ts_info["public_context_without_galois_bytes"],
        "ratio_tenseal_context_to_ours": ts_info["public_context_with_galois_bytes"] / pk,
        "ours_keygen_s": party.setup["context_and_secret_key_s"] + party.setup["public_key_s"],
        "tenseal_keygen_s": ts_info["context_keygen_s"] + ts_info["galois_keygen_s"],
    }

    machine["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "schema_version": SCHEMA_VERSION,
        "timestamp_utc": started,
        "mode": mode.name,
        "config": {
            **mode.to_json(),
            "seed": seed,
            "parameter_set": PARAMETER_SET,
            "small_parameter_set": SMALL_PARAMETER_SET,
            "reserve_per_key": RESERVE_PER_KEY,
        },
        "machine": machine,
        "setup": {"ours": party.setup, "tenseal": ts_info},
        "linear_head": rows,
        "alignment": cases,
        "batch": batch_section,
        "noise_flooding": flooding,
        "concurrency": concurrency,
        "key_material": keys,
        "runtime_s": time.perf_counter() - t_start,
    }
