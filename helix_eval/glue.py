"""GLUE-style end-to-end table (paper Table 3): accuracy and per-query latency with the client's
embedding time included, for the client-held map and the provider-held (folded) map.

Everything runs in one process, wired as the services use it (the client encrypts to bytes, the
provider evaluates from bytes and re-randomises, the client decrypts), so the latency is compute
only: no network, no HTTP. Per query: embed one text with the client's model (no cache), apply the
map (client-held only), encrypt, the provider's encrypted head, decrypt.

Alignment data: the public corpus plus k in-distribution texts of the head ("public + k
in-distribution", the service's default), mapped with the client's default method.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from helix_alignment.methods import CLIENT_DEFAULT_METHOD, solve_method, stats_of
from helix_embeddings import load_embedder
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys, Rerandomizer
from helix_he.linear_head import (
    EncryptedLinearHead,
    LogitsShape,
    decrypt_logits,
    encrypt_queries,
    encrypted_linear_head,
)
from helix_he.params import DEFAULT_PARAMETER_SET

from . import retention
from .data import SampleSpec, load_labelled, load_public
from .embedding import Embeddings
from .folded import fold_head

MAX_CIPHERTEXT_BYTES = 1 << 20


class _Party:
    """The client's keys and the provider's re-randomiser built from the client's public key."""

    def __init__(self) -> None:
        self.keys = ClientKeys.generate(DEFAULT_PARAMETER_SET)
        pk = seal.PublicKey()
        seal.KeyGenerator(self.keys.he.context, self.keys.secret_key).create_public_key(pk)
        self.rerandomizer = Rerandomizer(self.keys.he, pk)


def _two_columns(w: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary head's single logit z as two logits (-z/2, z/2): same argmax, and an encrypted head
    always has at least two outputs."""
    if w.shape[0] == 1:
        return np.vstack([-w / 2, w / 2]), np.array([-c[0] / 2, c[0] / 2])
    return w, c


def _encrypted_logits(party: _Party, head: EncryptedLinearHead, x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Logits of rows ``x`` through encrypt -> provider -> decrypt; bytes up and down of the last query."""
    queries = encrypt_queries(party.keys, x, head.layout)
    replies = encrypted_linear_head(
        head, queries, party.rerandomizer, max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES, query_scale_bits=QUERY_SCALE_BITS
    )
    shape = LogitsShape.of(head.layout, len(x))
    logits = decrypt_logits(party.keys, shape, [b for r in replies for b in r])
    return logits, len(queries[-1]), sum(map(len, replies[-1]))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, q))


def end_to_end(
    target: str,
    source: str,
    dataset: Any,
    public: Any,
    spec: SampleSpec,
    emb: Embeddings,
    k: int = 128,
    encrypted_examples: int = 200,
    latency_queries: int = 20,
    head_c: float | None = None,
) -> dict[str, Any]:
    """Accuracy (native, plaintext-mapped, encrypted client-held, encrypted provider-held) and latency."""
    data = load_labelled(dataset, spec)
    texts_pub = load_public(public, spec)
    y_tr, x_tr = emb.embed(target, data.train.texts), emb.embed(source, data.train.texts)
    y_te, x_te = emb.embed(target, data.test.texts), emb.embed(source, data.test.texts)
    y_pub, x_pub = emb.embed(target, texts_pub), emb.embed(source, texts_pub)
    lab_tr, lab_te = np.asarray(data.train.labels), np.asarray(data.test.labels)
    head = retention.train_head(y_tr, lab_tr, c=head_c, seed=spec.seed)
    idx = retention.stratified_sample(lab_tr, k, spec.seed)
    m, _ = solve_method(CLIENT_DEFAULT_METHOD, stats_of(np.vstack([x_pub, x_tr[idx]]), np.vstack([y_pub, y_tr[idx]])))
    w, c = _two_columns(*head.linear())
    fw, fc = fold_head(w, c, m)
    party = _Party()
    t0 = time.perf_counter()
    client_head = EncryptedLinearHead(party.keys.he, w.T, c)
    provider_head = EncryptedLinearHead(party.keys.he, fw.T, fc)
    prepare_s = time.perf_counter() - t0

    n_enc = min(encrypted_examples, len(lab_te))
    mapped = m.apply(x_te)
    plain = mapped[:n_enc] @ w.T + c
    enc_client, up_c, down_c = _encrypted_logits(party, client_head, mapped[:n_enc])
    enc_provider, up_p, down_p = _encrypted_logits(party, provider_head, x_te[:n_enc])
    classes = head.model[-1].classes_
    labels = lab_te[:n_enc]

    raw = load_embedder(source)  # no cache: the client embeds each query afresh
    raw.embed(data.test.texts[:2])  # warm-up (lazy initialisation)
    stages: dict[str, dict[str, list[float]]] = {"client_held": {}, "provider_held": {}}
    for text in data.test.texts[:latency_queries]:
        for variant, enc_head in (("client_held", client_head), ("provider_held", provider_head)):
            t = [time.perf_counter()]
            xb = np.asarray(raw.embed([text]), dtype=np.float64)
            t.append(time.perf_counter())
            xq = m.apply(xb) if variant == "client_held" else xb
            t.append(time.perf_counter())
            q = encrypt_queries(party.keys, xq, enc_head.layout)
            t.append(time.perf_counter())
            r = encrypted_linear_head(
                enc_head,
                q,
                party.rerandomizer,
                max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES,
                query_scale_bits=QUERY_SCALE_BITS,
            )
            t.append(time.perf_counter())
            decrypt_logits(party.keys, LogitsShape.of(enc_head.layout, 1), r[0])
            t.append(time.perf_counter())
            for name, a, b in zip(("embed", "map", "encrypt", "provider", "decrypt"), t, t[1:], strict=False):
                stages[variant].setdefault(name, []).append(b - a)
            stages[variant].setdefault("total", []).append(t[-1] - t[0])

    def acc(logits: np.ndarray) -> float:
        return float(np.mean(classes[np.argmax(logits, axis=1)] == labels))

    return {
        "target": target,
        "source": source,
        "target_model_id": emb.model_id(target),
        "source_model_id": emb.model_id(source),
        "dataset": data.name,
        "cut_rows": data.cut_rows,
        "alignment": f"public {len(texts_pub)} + k {len(idx)} in-distribution, {CLIENT_DEFAULT_METHOD}",
        "head": head.describe(),
        "sample": spec.as_dict(),
        "test_examples": int(len(lab_te)),
        "encrypted_examples": n_enc,
        "provider_native_accuracy": head.accuracy(y_te, lab_te),
        "plaintext_mapped_accuracy": head.accuracy(mapped, lab_te),
        "accuracy_on_encrypted_examples": {
            "plaintext_mapped": acc(plain),
            "client_held": acc(enc_client),
            "provider_held": acc(enc_provider),
        },
        "max_abs_logit_error": {
            "client_held": float(np.max(np.abs(enc_client - plain))),
            "provider_held": float(np.max(np.abs(enc_provider - plain))),
        },
        "head_prepare_s": prepare_s,
        "bytes": {"client_held": {"up": up_c, "down": down_c}, "provider_held": {"up": up_p, "down": down_p}},
        "dims": {"client_held": int(w.shape[1]), "provider_held": int(fw.shape[1])},
        "latency_ms": {
            v: {s: {"p50": _pct(vals, 50), "p95": _pct(vals, 95)} for s, vals in st.items()} for v, st in stages.items()
        },
        "latency_queries": latency_queries,
    }
