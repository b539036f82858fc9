"""The baseline: TenSEAL's high-level API with the same CKKS parameters, used the obvious way.

* Linear head: ``ts.ckks_vector(ctx, x).matmul(W) + b`` (slot packing; TenSEAL's vector-matrix
  product rotates the ciphertext once per input dimension, so it needs Galois keys).
* Alignment, naive sample-major: one ciphertext per sample (x_s in the slots), and for each output
  column b the provider accumulates sum_s Enc(x_s) * Y[s, b] (one plaintext multiplication and one
  addition per (ciphertext, column)). Column b of X^T Y ends up in the slots of one ciphertext. This
  needs no rotations, but n * d_A multiplications; at full size that is far too slow to run, so a
  small slice is measured and the total extrapolated (and labelled as extrapolated).
* Alignment, one ``dot`` per output (feature-major): one ciphertext per feature of X (the samples
  in the slots) and ``Enc(X[:, a]).dot(Y[:, b])`` for every output entry; also extrapolated.

TenSEAL does none of our reply hygiene (no masking of non-output slots, no re-randomisation), so
the baseline does strictly less work per reply than our circuits.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .config import BASELINE_COEFF_MOD_BIT_SIZES, BASELINE_POLY_MODULUS_DEGREE, BASELINE_SCALE_BITS, AlignmentCase
from .timing import summary_ms, timed


def make_context() -> tuple[Any, dict[str, Any]]:
    """The TenSEAL context (with secret key, for in-process decryption) and its one-off costs."""
    import tenseal as ts

    t0 = time.perf_counter()
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS, BASELINE_POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=list(BASELINE_COEFF_MOD_BIT_SIZES)
    )
    ctx.global_scale = 2.0**BASELINE_SCALE_BITS
    t1 = time.perf_counter()
    ctx.generate_galois_keys()
    t2 = time.perf_counter()
    public_with_galois, t_ser = timed(lambda: ctx.serialize(save_secret_key=False))
    public_without_galois = ctx.serialize(save_secret_key=False, save_galois_keys=False)
    info = {
        "api": "tenseal high-level: ts.context(CKKS, 8192, coeff_mod_bit_sizes=[60, 40, 40, 60]), global_scale 2^40",
        "context_keygen_s": t1 - t0,
        "galois_keygen_s": t2 - t1,
        "public_context_serialize_s": t_ser,
        "public_context_with_galois_bytes": len(public_with_galois),
        "public_context_without_galois_bytes": len(public_without_galois),
    }
    return ctx, info


def linear_head(ctx: Any, x: np.ndarray, w: np.ndarray, b: np.ndarray, runs: int) -> dict[str, Any]:
    """Client encrypt (+serialize), provider deserialize + matmul + bias + serialize, client
    deserialize + decrypt, `runs` times on the same x, W, b."""
    import tenseal as ts

    expected = x @ w + b
    w_list, b_list, x_list = w.tolist(), b.tolist(), x.tolist()
    k = w.shape[1]
    enc, prov, dec, errs, cpu = [], [], [], [], []
    up = down = 0
    for _ in range(runs):
        query, t_enc = timed(lambda: ts.ckks_vector(ctx, x_list).serialize())

        def provider() -> bytes:
            v = ts.ckks_vector_from(ctx, query)
            blob: bytes = (v.matmul(w_list) + b_list).serialize()
            return blob

        c0 = time.process_time()
        reply, t_prov = timed(provider)
        cpu.append((time.process_time() - c0) / t_prov)
        logits, t_dec = timed(lambda: np.asarray(ts.ckks_vector_from(ctx, reply).decrypt()[:k]))
        enc.append(t_enc)
        prov.append(t_prov)
        dec.append(t_dec)
        errs.append(float(np.max(np.abs(logits - expected))))
        up, down = len(query), len(reply)
    return {
        "client_encrypt": summary_ms(enc),
        "provider": summary_ms(prov),
        "client_decrypt": summary_ms(dec),
        "bytes_up": up,
        "bytes_down": down,
        "max_abs_error": max(errs),
        "provider_cpu_time_over_wall": float(np.median(cpu)),  # ~1: single-threaded; ~2: both cores busy
    }


def alignment_naive(
    ctx: Any, case: AlignmentCase, x: np.ndarray, y: np.ndarray, slice_shape: tuple[int, int], reps: int
) -> dict[str, Any]:
    """Measure the naive sample-major approach on `slice_shape` = (ciphertexts, columns) and
    extrapolate it to the whole case; also the one-dot-per-output approach on a 2 x 2 slice."""
    import tenseal as ts

    n, d_b, d_a = case.num_samples, case.client_dim, case.provider_dim
    n_ct, n_col = min(slice_shape[0], n), min(slice_shape[1], d_a)
    xs, ys = x[:n_ct], y[:n_ct, :n_col]

    # --- sample-major: one ciphertext per sample -----------------------------------------------
    enc_times, pair_times, dec_times, errs = [], [], [], []
    ct_bytes = res_bytes = 0
    for _ in range(reps):
        blobs, t_enc = timed(lambda: [ts.ckks_vector(ctx, row.tolist()).serialize() for row in xs])
        ct_bytes = len(blobs[0])

        def provider() -> list[bytes]:
            cts = [ts.ckks_vector_from(ctx, blob) for blob in blobs]
            out = []
            for col in range(n_col):
                acc = None
                for s in range(n_ct):
                    prod = cts[s] * float(ys[s, col])
                    acc = prod if acc is None else acc + prod
                assert acc is not None  # the slice holds at least one ciphertext
                out.append(acc.serialize())
            return out

        results, t_prov = timed(provider)
        res_bytes = len(results[0])
        got, t_dec = timed(
            lambda: np.stack([np.asarray(ts.ckks_vector_from(ctx, r).decrypt()[:d_b]) for r in results], axis=1)
        )
        enc_times.append(t_enc / n_ct)
        pair_times.append(t_prov / (n_ct * n_col))
        dec_times.append(t_dec / n_col)
        errs.append(float(np.max(np.abs(got - xs.T @ ys))))
    enc_per_ct = float(np.median(enc_times))
    per_pair = float(np.median(pair_times))
    dec_per_col = float(np.median(dec_times))
    est_enc = n * enc_per_ct
    est_prov = n * d_a * per_pair
    est_dec = d_a * dec_per_col
    sample_major = {
        "extrapolated": True,
        "description": (
            "one TenSEAL ciphertext per sample; column b = sum_s Enc(x_s) * Y[s, b] (CKKSVector * plain, then +)"
        ),
        "measured_slice": {"ciphertexts": n_ct, "columns": n_col, "reps": reps, "max_abs_error": max(errs)},
        "measured_encrypt_per_ciphertext_ms": enc_per_ct * 1e3,
        "measured_per_ciphertext_column_ms": per_pair * 1e3,
        "measured_decrypt_per_column_ms": dec_per_col * 1e3,
        "model": f"encrypt n*t_enc + provider n*d_A*t_pair + decrypt d_A*t_dec (n={n}, d_A={d_a})",
        "client_encrypt_s": est_enc,
        "provider_s": est_prov,
        "client_decrypt_s": est_dec,
        "total_s": est_enc + est_prov + est_dec,
        "ciphertexts_up": n,
        "bytes_up": n * ct_bytes,
        "bytes_down": d_a * res_bytes,
    }

    # --- feature-major: one dot per output entry -----------------------------------------------
    slots = BASELINE_POLY_MODULUS_DEGREE // 2
    chunks = math.ceil(n / slots)
    m = min(n, slots)
    fa, fb = min(2, d_b), min(2, d_a)
    fcts, t_fenc = timed(lambda: [ts.ckks_vector(ctx, x[:m, a].tolist()).serialize() for a in range(fa)])
    fvecs = [ts.ckks_vector_from(ctx, blob) for blob in fcts]
    y_lists = [y[:m, col].tolist() for col in range(fb)]

    def dots() -> list[list[bytes]]:
        return [[fvecs[a].dot(y_lists[col]).serialize() for col in range(fb)] for a in range(fa)]

    dres, t_dots = timed(dots)
    got, t_fdec = timed(
        lambda: np.array(
            [[ts.ckks_vector_from(ctx, dres[a][col]).decrypt()[0] for col in range(fb)] for a in range(fa)]
        )
    )
    per_dot = t_dots / (fa * fb)
    dec_per_out = t_fdec / (fa * fb)
    enc_per_fct = t_fenc / fa
    n_dots = d_b * d_a * chunks
    est = {
        "client_encrypt_s": d_b * chunks * enc_per_fct,
        "provider_s": n_dots * per_dot,
        "client_decrypt_s": d_b * d_a * dec_per_out,
    }
    one_dot = {
        "extrapolated": True,
        "description": (
            "one TenSEAL ciphertext per feature of X (samples in the slots); X^T Y[a, b] = Enc(X[:, a]).dot(Y[:, b])"
        ),
        "measured_slice": {
            "dots": fa * fb,
            "samples_per_ciphertext": m,
            "max_abs_error": float(np.max(np.abs(got - x[:m, :fa].T @ y[:m, :fb]))),
        },
        "measured_per_dot_ms": per_dot * 1e3,
        "measured_decrypt_per_output_ms": dec_per_out * 1e3,
        "model": (
            f"d_B*d_A*ceil(n/{slots}) = {n_dots} dots; encrypt d_B*ceil(n/{slots}) ciphertexts; decrypt d_B*d_A results"
        ),
        **est,
        "total_s": sum(est.values()),
        "bytes_up": d_b * chunks * len(fcts[0]),
        "bytes_down": d_b * d_a * len(dres[0][0]),
    }
    return {"sample_major": sample_major, "one_dot_per_output": one_dot}
