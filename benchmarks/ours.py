"""Our paths, wired in one process exactly as client and provider use them: the client encrypts
to bytes, the provider evaluates from bytes (validation, product, re-randomisation, serialization)
and the client decrypts the reply bytes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from helix_he.budget import FLOODING_REFERENCE_SCALE_BITS, y_scale_bits_for
from helix_he.context import load_from_bytes
from helix_he.cross_covariance import decrypt_cross_covariance, encrypt_alignment_data, encrypted_cross_covariance
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.linear_head import (
    EncryptedLinearHead,
    decrypt_batch_logits,
    decrypt_logits,
    encrypt_batch,
    encrypt_queries,
    encrypted_linear_head,
    encrypted_linear_head_batch,
)
from helix_he.packing import CrossCovarianceLayout, stride_bits_for
from shared_protocol.folds import fold_rows
from shared_protocol.messages import AlignmentResultHeader, ClassifyBatchReplyHeader, ClassifyReplyHeader

from .config import AlignmentCase
from .timing import summary_ms, timed

VALIDATION_FOLDS = 5  # the provider's default (HELIX_PROVIDER_ALIGNMENT_VALIDATION_FOLDS)

MAX_CIPHERTEXT_BYTES = 1 << 20


class OurParty:
    """The client's keys and the provider's re-randomiser built from the client's public key."""

    def __init__(self, parameter_set: str, *, reserve: int = 0) -> None:
        """`reserve`: encryptions of zero the provider prepares while idle (`Rerandomizer.refill`)."""
        t0 = time.perf_counter()
        self.keys = ClientKeys.generate(parameter_set)
        t1 = time.perf_counter()
        pk_bytes = self.keys.public_key_bytes()
        t2 = time.perf_counter()
        # What the provider builds from the client's registered public key.
        pk = seal.PublicKey()
        seal.KeyGenerator(self.keys.he.context, self.keys.secret_key).create_public_key(pk)
        self.rerandomizer = Rerandomizer(self.keys.he, pk, reserve=reserve)
        self.he = self.keys.he
        self.scale_bits = self.he.params.query_scale_bits
        self.setup: dict[str, Any] = {
            "parameter_set": parameter_set,
            "context_and_secret_key_s": t1 - t0,  # includes building the SEAL context once per process
            "public_key_s": t2 - t1,
            "public_key_bytes": len(pk_bytes),
        }


def reply_header(head: EncryptedLinearHead, num_queries: int) -> ClassifyReplyHeader:
    lay = head.layout
    return ClassifyReplyHeader(
        head_id="bench",
        num_queries=num_queries,
        ciphertexts_per_query=lay.ciphertexts_per_query,
        class_groups=[list(g) for g in lay.class_groups()],
        output_positions=[lay.output_positions(g).tolist() for g in range(lay.ciphertexts_per_query)],
        num_classes=lay.k,
    )


def linear_head(party: OurParty, x: np.ndarray, w: np.ndarray, b: np.ndarray, runs: int) -> dict[str, Any]:
    """One query, `runs` timed repetitions after one warm-up. Provider time is encrypted_linear_head
    on one serialized query (parse + validate, seed expansion, product, re-randomise, serialize). With a
    reserve, the provider's idle-time refill runs between queries, off the clock (as a worker does when
    it has no job); `refill_ms_per_query` is that off-line work."""
    keys, rr = party.keys, party.rerandomizer
    refill_t: list[float] = []
    head, t_build = timed(lambda: EncryptedLinearHead(party.he, w, b))
    header = reply_header(head, 1)
    xq = x.reshape(1, -1)
    expected = (xq @ w + b)[0]

    def once() -> tuple[float, float, float, float, int, int, float]:
        if rr.reserve:
            made, t_refill = timed(rr.refill)
            if made:
                refill_t.append(t_refill / made)
        query, t_enc = timed(lambda: encrypt_queries(keys, xq, head.layout))
        c0 = time.process_time()
        replies, t_prov = timed(
            lambda: encrypted_linear_head(
                head, query, rr, max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES, query_scale_bits=party.scale_bits
            )
        )
        cpu = (time.process_time() - c0) / t_prov
        logits, t_dec = timed(lambda: decrypt_logits(keys, header, replies[0]))
        err = float(np.max(np.abs(logits[0] - expected)))
        return t_enc, t_prov, t_dec, err, sum(map(len, query)), sum(map(len, replies[0])), cpu

    once()  # warm-up: first-use allocations, page faults, scratch directory
    samples = [once() for _ in range(runs)]
    enc, prov, dec, errs, ups, downs, cpus = zip(*samples, strict=False)
    return {
        "head_prepare_ms": t_build * 1e3,  # one-off per head (weight plaintexts in NTT form)
        "reply_ciphertexts": head.layout.ciphertexts_per_query,
        "client_encrypt": summary_ms(list(enc)),
        "provider": summary_ms(list(prov)),
        "client_decrypt": summary_ms(list(dec)),
        "bytes_up": int(ups[-1]),
        "bytes_down": int(downs[-1]),
        "reply_header_bytes": len(header.model_dump_json()),
        "max_abs_error": max(errs),
        "provider_cpu_time_over_wall": float(np.median(cpus)),
        "parameter_set": party.he.params.name,
        "reserve": rr.reserve,
        "refill_ms_per_query": float(np.median(refill_t)) * 1e3 if refill_t else None,
    }


def alignment(party: OurParty, case: AlignmentCase, x: np.ndarray, y: np.ndarray, runs: int) -> dict[str, Any]:
    """Client encrypt (all data ciphertexts, to bytes) + provider encrypted_cross_covariance (from
    bytes: validation, products, packing tree, mask, re-randomisation, serialization; all d_A
    columns in this one process) + client decrypt; wall time of each phase. The one-time Galois
    keys (generation and the provider's load) are measured separately."""
    keys, he, rr = party.keys, party.he, party.rerandomizer
    n, d_b, d_a = case.num_samples, case.client_dim, case.provider_dim
    bits = stride_bits_for(he.n, d_b)
    t0 = time.perf_counter()
    gk_bytes = keys.galois_key_bytes(bits)
    t1 = time.perf_counter()
    galois = seal.GaloisKeys()
    load_from_bytes(galois, he.context, gk_bytes)  # what the provider does once per registered key
    t2 = time.perf_counter()
    layout = CrossCovarianceLayout.for_key(he.n, d_b, n, bits)
    groups = range(len(layout.result_groups(d_a)))
    expected = x.T @ y
    enc_t, prov_t, dec_t, total_t, errs, rels = [], [], [], [], [], []
    up = down = header_bytes = 0
    for _ in range(runs):
        blobs, t_enc = timed(lambda: encrypt_alignment_data(keys, x, layout, 0, layout.num_ciphertexts))

        def load(c: int) -> seal.Ciphertext:
            return he.ciphertext_from_bytes(blobs[c], level=he.output_level, max_bytes=MAX_CIPHERTEXT_BYTES)

        def provider() -> tuple[list[bytes], float]:
            return encrypted_cross_covariance(
                he, layout, load, y, groups, rr, galois, y_scale_bits=y_scale_bits_for(y, layout.data_scale_bits)
            )

        (cols, scale), t_prov = timed(provider)
        header = AlignmentResultHeader(
            session_id="bench",
            feature_dim=d_b,
            output_columns=d_a,
            stride_bits=bits,
            value_scale=scale,
            y_sum=y.sum(0).tolist(),
        )
        got, t_dec = timed(lambda: decrypt_cross_covariance(keys, header, cols))
        enc_t.append(t_enc)
        prov_t.append(t_prov)
        dec_t.append(t_dec)
        total_t.append(t_enc + t_prov + t_dec)
        errs.append(float(np.max(np.abs(got - expected))))
        rels.append(float(np.linalg.norm(got - expected) / np.linalg.norm(expected)))
        up = sum(map(len, blobs))
        down = sum(map(len, cols))
        header_bytes = len(header.model_dump_json())
    # Per-fold results (map methods that validate on held-out alignment data), same data and keys.
    rows = fold_rows(n, 0, VALIDATION_FOLDS)
    (fold_cols, _), t_folds = timed(
        lambda: encrypted_cross_covariance(
            he,
            layout,
            load,
            y,
            groups,
            rr,
            galois,
            y_scale_bits=y_scale_bits_for(y, layout.data_scale_bits),
            folds=rows,
        )
    )
    per = len(groups)
    fold_err = max(
        float(
            np.max(np.abs(decrypt_cross_covariance(keys, header, fold_cols[k * per : (k + 1) * per]) - x[r].T @ y[r]))
        )
        for k, r in enumerate(rows)
    )
    return {
        "validation_folds": VALIDATION_FOLDS,
        "provider_folds_s": t_folds,
        "provider_folds_ratio": t_folds / float(np.median(prov_t)),
        "bytes_down_folds": sum(map(len, fold_cols)),
        "folds_max_abs_error": fold_err,
        "data_ciphertexts": layout.num_ciphertexts,
        "samples_per_ciphertext": layout.samples_per_ciphertext,
        "result_ciphertexts": len(groups),
        "stride_bits": bits,
        "runs": runs,
        "client_encrypt_s": float(np.median(enc_t)),
        "provider_s": float(np.median(prov_t)),
        "client_decrypt_s": float(np.median(dec_t)),
        "total_s": float(np.median(total_t)),
        "bytes_up": up,
        "bytes_down": down,
        "result_header_bytes": header_bytes,
        "galois_key_bytes": len(gk_bytes),
        "galois_keygen_s": t1 - t0,
        "galois_load_s": t2 - t1,
        "max_abs_error": max(errs),
        "relative_error_frobenius": max(rels),
    }


def batch(party: OurParty, x: np.ndarray, w: np.ndarray, b: np.ndarray, runs: int) -> dict[str, Any]:
    """Feature-major batch of len(x) queries: client encrypt (d ciphertexts), provider
    encrypted_linear_head_batch (from bytes), client decrypt; throughput over the whole round."""
    keys, rr = party.keys, party.rerandomizer
    head = EncryptedLinearHead(party.he, w, b)
    m = x.shape[0]
    expected = x @ w + b
    enc_t, prov_t, dec_t, errs = [], [], [], []
    up = down = 0
    for _ in range(runs):
        features, t_enc = timed(lambda: encrypt_batch(keys, x, head.layout))
        replies, t_prov = timed(
            lambda: encrypted_linear_head_batch(
                head, features, m, rr, max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES, query_scale_bits=party.scale_bits
            )
        )
        header = ClassifyBatchReplyHeader(head_id="bench", num_queries=m, num_classes=w.shape[1])
        logits, t_dec = timed(lambda: decrypt_batch_logits(keys, header, replies))
        enc_t.append(t_enc)
        prov_t.append(t_prov)
        dec_t.append(t_dec)
        errs.append(float(np.max(np.abs(logits - expected))))
        up, down = sum(map(len, features)), sum(map(len, replies))
    total = float(np.median(np.add(np.add(enc_t, prov_t), dec_t)))
    return {
        "parameter_set": party.he.params.name,
        "queries": m,
        "d": w.shape[0],
        "k": w.shape[1],
        "runs": runs,
        "client_encrypt_s": float(np.median(enc_t)),
        "provider_s": float(np.median(prov_t)),
        "client_decrypt_s": float(np.median(dec_t)),
        "total_s": total,
        "queries_per_s": m / total,
        "bytes_up": up,
        "bytes_down": down,
        "bytes_up_per_query": up / m,
        "bytes_down_per_query": down / m,
        "max_abs_error": max(errs),
    }


def per_query_throughput(party: OurParty, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """The per-query path on the same kind of inputs, sequentially: the batch's baseline."""
    keys, rr = party.keys, party.rerandomizer
    head = EncryptedLinearHead(party.he, w, b)
    header = reply_header(head, 1)
    t0 = time.perf_counter()
    up = 0
    for row in x:
        q = encrypt_queries(keys, row[None, :], head.layout)
        r = encrypted_linear_head(
            head, q, rr, max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES, query_scale_bits=party.scale_bits
        )
        decrypt_logits(keys, header, r[0])
        up += sum(map(len, q))
    total = time.perf_counter() - t0
    return {
        "queries": x.shape[0],
        "total_s": total,
        "queries_per_s": x.shape[0] / total,
        "bytes_up_per_query": up / x.shape[0],
    }


_WORKER_STATE: dict[str, Any] = {}


def _worker_init(parameter_set: str, w: np.ndarray, b: np.ndarray, pk_bytes: bytes) -> None:
    from helix_he.context import he_context

    he = he_context(parameter_set)
    pk = seal.PublicKey()
    load_from_bytes(pk, he.context, pk_bytes)
    _WORKER_STATE["head"] = EncryptedLinearHead(he, w, b)
    _WORKER_STATE["rr"] = Rerandomizer(he, pk)


def _worker_eval(query: list[bytes]) -> list[list[bytes]]:
    return encrypted_linear_head(
        _WORKER_STATE["head"],
        query,
        _WORKER_STATE["rr"],
        max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES,
        query_scale_bits=_WORKER_STATE["head"].he.params.query_scale_bits,
    )


def concurrent_throughput(
    party: OurParty, x: np.ndarray, w: np.ndarray, b: np.ndarray, workers: int, clients: int = 16
) -> dict[str, Any]:
    """Provider throughput with `workers` HE processes (as the server's pool) while `clients` callers
    each submit their queries at once: does throughput grow with cores?"""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    head = EncryptedLinearHead(party.he, w, b)
    queries = [encrypt_queries(party.keys, row[None, :], head.layout) for row in x]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(party.setup["parameter_set"], w, b, party.keys.public_key_bytes()),
    ) as pool:
        list(pool.map(_worker_eval, queries[: workers * 2]))  # warm every worker
        t0 = time.perf_counter()
        futures = [pool.submit(_worker_eval, q) for q in queries]  # `clients` callers' queries, all in flight
        for f in futures:
            f.result()
        total = time.perf_counter() - t0
    return {
        "workers": workers,
        "clients": clients,
        "queries": len(queries),
        "total_s": total,
        "queries_per_s": len(queries) / total,
    }


def noise_flooding_cost(party: OurParty, x: np.ndarray, w: np.ndarray, b: np.ndarray, bits: int) -> dict[str, Any]:
    """Max logit error with flooding noise of 2^bits at the output scale, over the rows of x."""
    keys, rr = party.keys, party.rerandomizer
    head = EncryptedLinearHead(party.he, w, b, noise_flooding_bits=bits)
    header = reply_header(head, x.shape[0])
    replies = encrypted_linear_head(
        head,
        encrypt_queries(keys, x, head.layout),
        rr,
        max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES,
        query_scale_bits=party.scale_bits,
    )
    logits = decrypt_logits(keys, header, [r for q in replies for r in q])
    return {
        "bits": bits,
        "max_abs_error": float(np.max(np.abs(logits - (x @ w + b)))),
        "bound": 2.0 ** (bits - FLOODING_REFERENCE_SCALE_BITS),
    }
