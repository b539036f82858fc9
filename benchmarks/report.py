"""Markdown report and latency plot from a results dict (matplotlib optional)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .targets import render_targets


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def fmt_s(v: float) -> str:
    if v >= 3600:
        return f"{v / 3600:.1f} h"
    if v >= 120:
        return f"{v / 60:.0f} min"
    return f"{v:.1f} s" if v >= 1 else f"{v * 1e3:.0f} ms"


def fmt_x(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}×" if v >= 10 else f"{v:.1f}×"


def write_plot(results: dict[str, Any], path: Path) -> str | None:
    """Provider latency per query vs d, ours (p50, p95 whisker) and TenSEAL (p50). Returns a note
    instead of raising when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed; plot skipped (pip install matplotlib)"
    rows = results["linear_head"]
    ks = sorted({r["k"] for r in rows})
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, k in enumerate(ks):
        mine = sorted((r for r in rows if r["k"] == k), key=lambda r: r["d"])
        ds = [r["d"] for r in mine]
        p50 = [r["ours"]["provider"]["p50_ms"] for r in mine]
        p95 = [r["ours"]["provider"]["p95_ms"] for r in mine]
        c = colors[i % len(colors)]
        ax.errorbar(
            ds,
            p50,
            yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=False)]],
            color=c,
            marker="o",
            capsize=3,
            label=f"ours, k={k} (p50, bar to p95)",
        )
        base = [r for r in mine if r["baseline"] is not None]
        if base:
            ax.plot(
                [r["d"] for r in base],
                [r["baseline"]["provider"]["p50_ms"] for r in base],
                color=c,
                marker="s",
                linestyle="--",
                label=f"TenSEAL matmul, k={k} (p50)",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ds_all = sorted({r["d"] for r in rows})
    ax.set_xticks(ds_all, [str(d) for d in ds_all])
    ax.set_xlabel("embedding dimension d")
    ax.set_ylabel("provider time per query (ms, log scale)")
    ax.set_title(f"Encrypted linear head, one query (mode: {results['mode']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def render_markdown(
    results: dict[str, Any],
    *,
    plot_rel: str | None,
    plot_note: str | None,
    json_rel: str | None,
    results_dir: Path | None = None,
) -> str:
    m = results["machine"]
    mode = results["mode"]
    cfg = results["config"]
    out: list[str] = []
    w = out.append
    w("# Benchmarks: encrypted linear head, secure alignment, key material\n")
    w(
        "All numbers on this page come from one run of "
        f"`python -m benchmarks{' --quick' if mode.startswith('quick') else ''}"
        f"{' --full' if cfg.get('full') else ''}` (mode **{mode}**), started {results['timestamp_utc']}, "
        f"which took {fmt_s(results['runtime_s'])}. "
        f"Machine: {m['cpu_count']} CPUs ({m.get('cpu_model') or 'unknown model'}), Python {m['python']}, "
        f"TenSEAL {m['tenseal']}, numpy {m['numpy']}, "
        f"native NTT kernel {'loaded' if m['native_ntt_kernel'] else 'NOT loaded (numpy fallback)'}; "
        f"load average at start {', '.join(f'{v:.1f}' for v in m['load_average_at_start'] or [])} "
        f"(other processes were running, so absolute times are noisy; ratios come from the same run and inputs).\n"
    )
    if mode.startswith("quick"):
        w(
            f"> **These are quick-mode numbers** (smaller grid, {cfg['head_runs']} runs per point, "
            f"{cfg['baseline_runs']} baseline run(s) at k=2 only, smaller alignment). "
            "Run the default mode for the full grid.\n"
        )
    if json_rel:
        w(f"Machine-readable results: [`{json_rel}`]({json_rel}).\n")

    w("## Reproduce\n")
    w(
        "```sh\n"
        "python -m benchmarks                # default: d in {384,768,1536,3072} x k in {2,4,14}, 20 runs each,\n"
        "                                    #   TenSEAL 3 runs each, alignment n=4096, d_B=d_A=384\n"
        "python -m benchmarks --quick        # < 1 min: d in {384,768} x k in {2,4}, 5 runs, TenSEAL at k=2 only\n"
        "python -m benchmarks --full         # adds the slow alignment case n=16384, d_B=d_A=768\n"
        "python -m benchmarks --out benchmarks/results/latest.json --doc docs/benchmarks.md   # the defaults\n"
        "python -m benchmarks --report-only  # re-render this page and the plot from the JSON, no measuring\n"
        "```\n"
    )
    w(
        "Run from the repository root. `--doc ''` skips the markdown; the plot is written next to the "
        "markdown as `benchmarks-latency.png` (or `--plot PATH`).\n"
    )

    w("## How to read\n")
    w(
        "Every row measures our path and the baseline on the *same* inputs in the *same* process, one "
        "after the other. **Ours** is the code the services run: the client encrypts to bytes "
        "(`ClientKeys.encrypt_queries`: a compact seeded ciphertext at the last level), the provider runs "
        "`encrypted_linear_head` on the serialized query (parse + validate every residue, expand the seed, one "
        "plaintext×ciphertext product on NTT residues, re-randomise with a fresh public-key encryption of zero, "
        "keep c0 only at the logit coefficients, serialize) and the client decrypts (`decrypt_logits`). "
        "**TenSEAL** is the obvious high-level alternative with the same "
        "CKKS parameters (N=8192, primes 60/40/40/60, scale 2^40): `ts.ckks_vector(ctx, x).matmul(W) + b`, "
        "which uses the diagonal method (one rotation and one plaintext product per input dimension, "
        "so it needs Galois keys); its timing also includes "
        "(de)serialization, but it does no masking or re-randomisation. "
        "*Speed-up* = TenSEAL p50 / ours p50 (>1 means ours is faster). p50/p95 are over the stated number of "
        "timed runs (ours after one warm-up). *Error* is the max absolute difference between decrypted logits "
        "(or X^T Y) and numpy in float64. Byte counts are the serialized ciphertexts on the wire. "
        "Alignment baselines marked *extrapolated* were measured on a small slice and scaled by the stated "
        "cost model, because running them at full size would take hours.\n"
    )

    out.extend(render_targets(results, results_dir))

    # --- 1 ---------------------------------------------------------------------------------------
    rows = results["linear_head"]
    w("## 1. Encrypted linear head, one query\n")
    w(
        f"Ours: {cfg['head_runs']} timed runs per point; "
        f"TenSEAL: {cfg['baseline_runs']} run(s) per point where measured.\n"
    )
    w(
        "| d | k | ours provider p50 (ms) | ours p95 (ms) | TenSEAL provider p50 (ms) | **speed-up** | "
        "ours client enc / dec p50 (ms) | TenSEAL enc / dec p50 (ms) | ours bytes up / down | "
        "TenSEAL bytes up / down | "
        "max abs err ours / TenSEAL |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        o, b = r["ours"], r["baseline"]
        tenseal_enc_dec = (
            f"{fmt_ms(b['client_encrypt']['p50_ms'])} / {fmt_ms(b['client_decrypt']['p50_ms'])}" if b else "–"
        )
        w(
            f"| {r['d']} | {r['k']} | {fmt_ms(o['provider']['p50_ms'])} | {fmt_ms(o['provider']['p95_ms'])} | "
            f"{fmt_ms(b['provider']['p50_ms']) if b else '–'} | **{fmt_x(r['speedup_provider_p50'])}** | "
            f"{fmt_ms(o['client_encrypt']['p50_ms'])} / {fmt_ms(o['client_decrypt']['p50_ms'])} | "
            f"{tenseal_enc_dec} | "
            f"{fmt_bytes(o['bytes_up'])} / {fmt_bytes(o['bytes_down'])} ({o['reply_ciphertexts']} ct) | "
            f"{(fmt_bytes(b['bytes_up']) + ' / ' + fmt_bytes(b['bytes_down'])) if b else '–'} | "
            f"{o['max_abs_error']:.1e} / {(format(b['max_abs_error'], '.1e')) if b else '–'} |"
        )
    w("")
    cmp_rows = [r for r in rows if r["baseline"] is not None]
    if cmp_rows:
        sp = [r["speedup_provider_p50"] for r in cmp_rows]
        e2e = [r["speedup_end_to_end_p50"] for r in cmp_rows]
        w(
            f"Speed-up of the provider step over the {len(cmp_rows)} compared points: "
            f"**{fmt_x(min(sp))} to {fmt_x(max(sp))}**; "
            "end to end (client encrypt + provider + client decrypt, p50 sums): "
            f"{fmt_x(min(e2e))} to {fmt_x(max(e2e))}. "
            "TenSEAL's time grows with d (one rotation per input dimension) and hardly with k; ours grows with the "
            "number of reply ciphertexts, ceil(k / floor(8192/d)).\n"
        )
    w(
        "Our reply has one ciphertext per group of floor(8192/d) classes: the whole c1 (one 60-bit prime) and c0 "
        "only at the group's logit coefficients, so nothing but the logits can be decrypted from it; "
        "plus a small JSON header (positions of the logits). Preparing a head (weight polynomials in NTT form) "
        "is a one-off per head: "
        + ", ".join(f"d={r['d']},k={r['k']}: {r['ours']['head_prepare_ms']:.0f} ms" for r in rows[:3])
        + (" …" if len(rows) > 3 else "")
        + ".\n"
    )
    if plot_rel:
        w(f"![Provider latency per query vs d]({plot_rel})\n")
    elif plot_note:
        w(f"*Plot: {plot_note}.*\n")

    small_rows = [r for r in rows if "ours_small" in r]
    if small_rows:
        w("## 1a. The 4096-ring path (`ckks-n4096-q47`)\n")
        w(
            "Same inputs as section 1. The query is a seeded ciphertext under one 47-bit prime (6 bytes per "
            "coefficient), the reply is switched down to 2^29 and packed at 29 bits per coefficient. *With reserve*: "
            "the provider's idle-time refill (`Rerandomizer.refill`, what an idle worker does) ran between queries, "
            "off the clock; *without*: each reply makes its own encryption of zero.\n"
        )
        w(
            "| d | k | provider p50 with reserve (ms) | p95 | p50 without reserve | idle-time work per query (ms) | "
            "client enc / dec p50 (ms) | bytes up / down | today's bytes up / down | max abs err |"
        )
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in small_rows:
            o, c, t = r["ours_small"], r["ours_small_no_reserve"], r["ours"]
            w(
                f"| {r['d']} | {r['k']} | **{fmt_ms(o['provider']['p50_ms'])}** | {fmt_ms(o['provider']['p95_ms'])} | "
                f"{fmt_ms(c['provider']['p50_ms'])} | {fmt_ms(o['refill_ms_per_query'])} | "
                f"{fmt_ms(o['client_encrypt']['p50_ms'])} / {fmt_ms(o['client_decrypt']['p50_ms'])} | "
                f"{o['bytes_up']:,} B / {o['bytes_down']:,} B ({o['reply_ciphertexts']} ct) | "
                f"{t['bytes_up']:,} B / {t['bytes_down']:,} B | {o['max_abs_error']:.1e} |"
            )
        w("")

    # --- 1b --------------------------------------------------------------------------------------
    bt = results.get("batch")
    if bt:
        o, s1 = bt["ours"], bt["per_query_path"]
        w("## 1b. Many queries at once: feature-major batch\n")
        w(
            f"d={o['d']}, k={o['k']}: the client encrypts one ciphertext per embedding dimension, "
            "coefficient t holding "
            "query t's feature (`ClientKeys.encrypt_batch`); the provider forms k integer combinations of them "
            "(`encrypted_linear_head_batch`), so coefficient t of reply j is query t's logit j. "
            "Baseline: the per-query "
            "path above, one query after another, on the same kind of inputs (first 64 queries).\n"
        )
        w(
            "| path | queries | client encrypt | provider | client decrypt | **queries/s** | bytes up per query | "
            "bytes down per query | max abs err |"
        )
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        w(
            f"| batch (median of {o['runs']}) | {o['queries']} | {fmt_s(o['client_encrypt_s'])} | "
            f"{fmt_s(o['provider_s'])} | "
            f"{fmt_s(o['client_decrypt_s'])} | **{o['queries_per_s']:,.0f}** | {fmt_bytes(o['bytes_up_per_query'])} | "
            f"{fmt_bytes(o['bytes_down_per_query'])} | {o['max_abs_error']:.1e} |"
        )
        so = bt.get("ours_small")
        if so:
            w(
                f"| batch under `ckks-n4096-q47` (median of {so['runs']}) | {so['queries']} | "
                f"{fmt_s(so['client_encrypt_s'])} | {fmt_s(so['provider_s'])} | {fmt_s(so['client_decrypt_s'])} | "
                f"**{so['queries_per_s']:,.0f}** | {fmt_bytes(so['bytes_up_per_query'])} | "
                f"{fmt_bytes(so['bytes_down_per_query'])} | {so['max_abs_error']:.1e} |"
            )
        w(
            f"| per-query path | {s1['queries']} | | | | {s1['queries_per_s']:,.0f} | "
            f"{fmt_bytes(s1['bytes_up_per_query'])} | | |"
        )
        w("")
        w(f"Throughput ratio batch / per-query: **{fmt_x(bt['speedup_throughput'])}**.\n")
    conc = results.get("concurrency")
    if conc:
        w("## 1c. 16 concurrent clients\n")
        w(
            "All queries of 16 callers in flight at once against a pool of HE worker processes (as the provider "
            "server runs them, off the event loop), per-query path, d=384, k=4.\n"
        )
        w("| HE worker processes | queries | wall | **queries/s** |")
        w("|---:|---:|---:|---:|")
        for c in conc:
            w(f"| {c['workers']} | {c['queries']} | {fmt_s(c['total_s'])} | **{c['queries_per_s']:,.0f}** |")
        if len(conc) > 1:
            w(
                f"\nScaling from {conc[0]['workers']} to {conc[-1]['workers']} workers: "
                f"{fmt_x(conc[-1]['queries_per_s'] / conc[0]['queries_per_s'])} "
                "(the machine's other load limits this).\n"
            )
    fl = results.get("noise_flooding")
    if fl:
        w("## 1d. Output noise flooding: what it costs\n")
        w(
            "`HELIX_PROVIDER_NOISE_FLOODING_BITS=b` adds noise uniform in [-2^b, 2^b] to each logit at the output "
            "scale 2^48 (after re-randomisation), hiding the low-order bits that carry encryption noise.\n"
        )
        w(
            "The measured error also contains the encryption noise (~1e-6 without flooding), so below b ≈ 28 "
            "flooding is invisible in it.\n"
        )
        w("| bits | flooding bound 2^(b-48) | measured max abs logit error (50 queries) |")
        w("|---:|---:|---:|")
        for f in fl:
            w(f"| {f['bits']} | {f['bound']:.1e} | {f['max_abs_error']:.1e} |")
        w("")

    # --- 2 ---------------------------------------------------------------------------------------
    w("## 2. Secure alignment, HE part: Enc(X^T Y)\n")
    w(
        "Client encrypts X (n × d_B, |x| ≤ 1) to bytes; provider runs `encrypted_cross_covariance` over all "
        "d_A columns of its plaintext Y (n × d_A) from those bytes, packing 2^k columns per result ciphertext with "
        "k Galois keys; client decrypts the result. "
        "Wall time per phase, one run.\n"
    )
    w("| case | path | client encrypt | provider | client decrypt | **total** | bytes up | bytes down | max abs err |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for c in results["alignment"]:
        o, sm, od = c["ours"], c["baseline"]["sample_major"], c["baseline"]["one_dot_per_output"]
        label = f"n={c['n']}, d_B={c['d_B']}, d_A={c['d_A']}"
        label += " (`--full`)" if c["full_size_only_with_flag"] else ""
        w(
            f"| {label} | ours ({o['data_ciphertexts']} data ct, {o['samples_per_ciphertext']} samples/ct, "
            f"{o.get('result_ciphertexts', '?')} result ct, "
            f"rel. err {o.get('relative_error_frobenius', float('nan')):.1e}) | "
            f"{fmt_s(o['client_encrypt_s'])} | {fmt_s(o['provider_s'])} | {fmt_s(o['client_decrypt_s'])} | "
            f"**{fmt_s(o['total_s'])}** | {fmt_bytes(o['bytes_up'])} | {fmt_bytes(o['bytes_down'])} | "
            f"{o['max_abs_error']:.1e} |"
        )
        w(
            f"| | naive sample-major, TenSEAL, **extrapolated** ({sm['ciphertexts_up']} ct) | "
            f"{fmt_s(sm['client_encrypt_s'])} | "
            f"{fmt_s(sm['provider_s'])} | {fmt_s(sm['client_decrypt_s'])} | **{fmt_s(sm['total_s'])}** | "
            f"{fmt_bytes(sm['bytes_up'])} | {fmt_bytes(sm['bytes_down'])} | "
            f"{sm['measured_slice']['max_abs_error']:.1e} (slice) |"
        )
        w(
            f"| | one `dot` per output, TenSEAL, **extrapolated** | {fmt_s(od['client_encrypt_s'])} | "
            f"{fmt_s(od['provider_s'])} | {fmt_s(od['client_decrypt_s'])} | **{fmt_s(od['total_s'])}** | "
            f"{fmt_bytes(od['bytes_up'])} | {fmt_bytes(od['bytes_down'])} | "
            f"{od['measured_slice']['max_abs_error']:.1e} (slice) |"
        )
        so = c.get("ours_small")
        if so:
            w(
                f"| | ours under `ckks-n4096-q109` ({so['data_ciphertexts']} data ct, "
                f"{so['samples_per_ciphertext']} samples/ct, {so.get('result_ciphertexts', '?')} result ct, "
                f"rel. err {so.get('relative_error_frobenius', float('nan')):.1e}) | "
                f"{fmt_s(so['client_encrypt_s'])} | {fmt_s(so['provider_s'])} | {fmt_s(so['client_decrypt_s'])} | "
                f"**{fmt_s(so['total_s'])}** | {fmt_bytes(so['bytes_up'])} | {fmt_bytes(so['bytes_down'])} | "
                f"{so['max_abs_error']:.1e} |"
            )
    w("")
    for c in results["alignment"]:
        o = c["ours"]
        if "provider_folds_s" in o:
            w(
                f"- n={c['n']}, d_B={c['d_B']}, d_A={c['d_A']}, per-fold results "
                f"({o['validation_folds']} validation folds, for `ridge_cv`): "
                f"provider {fmt_s(o['provider_folds_s'])} = **{o['provider_folds_ratio']:.2f}x** the single result "
                f"in the same run, {fmt_bytes(o['bytes_down_folds'])} down, max abs err {o['folds_max_abs_error']:.1e}."
            )
    for c in results["alignment"]:
        sm, od = c["baseline"]["sample_major"], c["baseline"]["one_dot_per_output"]
        sl = sm["measured_slice"]
        w(
            f"- n={c['n']}, d_B={c['d_B']}, d_A={c['d_A']}: "
            f"speed-up (total) **{fmt_x(c['speedup_total_vs_sample_major_extrapolated'])}** "
            f"vs naive sample-major (provider part alone {fmt_x(c['speedup_provider_vs_sample_major_extrapolated'])}), "
            f"**{fmt_x(c['speedup_total_vs_one_dot_extrapolated'])}** vs one dot per output; upload "
            f"{fmt_x(c['bytes_up_ratio_vs_sample_major'])} smaller. "
            f"Sample-major model: measured on {sl['ciphertexts']} ciphertexts × "
            f"{sl['columns']} columns ({sl['reps']} rep(s)): "
            f"{sm['measured_per_ciphertext_column_ms']:.2f} ms per (ciphertext, column), "
            f"{sm['measured_encrypt_per_ciphertext_ms']:.1f} ms per encryption, "
            f"{sm['measured_decrypt_per_column_ms']:.1f} ms per "
            f"decryption; {sm['model']}. One-dot model: {od['measured_per_dot_ms']:.1f} ms per dot "
            f"({od['measured_slice']['dots']} measured, "
            f"{od['measured_slice']['samples_per_ciphertext']} samples per ciphertext); {od['model']}."
        )
    if not cfg.get("full"):
        w("- The slow full-size case (n=16384, d_B=d_A=768) is only run with `--full`.")
    w("")

    # --- 3 ---------------------------------------------------------------------------------------
    k = results["key_material"]
    w("## 3. Key material the client sends\n")
    w("| | ours | TenSEAL public context |")
    w("|---|---:|---:|")
    w(f"| public key | {fmt_bytes(k['ours_public_key_bytes'])} ({k['ours_public_key_bytes']:,} B) | included |")
    w(
        f"| Galois keys | inference: none; alignment: {fmt_bytes(k.get('ours_galois_key_bytes', 0))} "
        f"({k.get('ours_galois_key_bytes', 0):,} B, the packing tree's automorphisms only, seeded) | included |"
    )
    w("| relinearization keys | 0 B (no ciphertext×ciphertext products) | included |")
    w(
        f"| **total** | **{fmt_bytes(k['ours_public_key_bytes'])}** (alignment key: "
        f"{fmt_bytes(k.get('ours_alignment_key_bytes', k['ours_public_key_bytes']))}) | "
        f"**{fmt_bytes(k['tenseal_public_context_with_galois_bytes'])}** "
        f"({k['tenseal_public_context_with_galois_bytes']:,} B; without Galois keys "
        f"{fmt_bytes(k['tenseal_public_context_without_galois_bytes'])}) |"
    )
    w(f"| key generation | {fmt_s(k['ours_keygen_s'])} | {fmt_s(k['tenseal_keygen_s'])} |")
    w("")
    w(
        f"The TenSEAL context the provider would need for `matmul` is **{fmt_x(k['ratio_tenseal_context_to_ours'])}** "
        "the size of our public key (`ClientKeys.public_key_bytes()`, SEAL's full non-seeded form, "
        "as the binding returns it). "
        "Our provider uses the public key only to re-randomise replies.\n"
    )

    # --- notes -----------------------------------------------------------------------------------
    w("## Method notes\n")
    w(
        "- Inputs: x uniform on the unit sphere in R^d (as sentence embeddings are), W ~ N(0, 1), b ~ N(0, 1) "
        "for the head; "
        "X ~ U(-1, 1), Y ~ N(0, 1) for alignment; "
        f"fixed seed {cfg['seed']}."
    )
    base_rows = [r for r in rows if r["baseline"] is not None]
    ours_cpu = max(r["ours"]["provider_cpu_time_over_wall"] for r in rows)
    base_cpu = max((r["baseline"]["provider_cpu_time_over_wall"] for r in base_rows), default=float("nan"))
    w(
        "- Single process. Provider CPU time / wall time (max over points): "
        f"ours {ours_cpu:.2f}, TenSEAL {base_cpu:.2f} "
        "(1.0 = one core busy; TenSEAL may use its thread pool, ours is single-threaded, so on an idle multi-core "
        "machine the gap per wall-clock second can differ from per CPU-second). The baseline gets no warm-up "
        "because one call takes seconds."
    )
    w(
        "- Both contexts are kept in memory; key generation is excluded from the per-query numbers and "
        "reported in section 3."
    )
    w(
        "- Our bytes are what the services send: inference queries and replies in HELIX's compact RLWE form "
        "(`helix_he.rlwe`: a 32-byte seed plus c0 for queries, c1 plus c0 at the outputs for replies, one "
        "60-bit prime in 8 bytes per residue); alignment data and results as SEAL serializations. TenSEAL bytes are "
        "`CKKSVector.serialize()`."
    )
    w("")
    return "\n".join(out)


def write_report(results: dict[str, Any], doc: Path, plot: Path | None, json_path: Path | None) -> str | None:
    """Write the markdown (and the plot); return a note if the plot was skipped."""
    note = None
    plot_rel = None
    if plot is not None:
        note = write_plot(results, plot)
        if note is None:
            plot_rel = os.path.relpath(plot, doc.parent)
    json_rel = os.path.relpath(json_path, doc.parent) if json_path is not None else None
    doc.parent.mkdir(parents=True, exist_ok=True)
    results_dir = json_path.parent if json_path is not None else None
    doc.write_text(
        render_markdown(results, plot_rel=plot_rel, plot_note=note, json_rel=json_rel, results_dir=results_dir),
        encoding="utf-8",
    )
    return note
