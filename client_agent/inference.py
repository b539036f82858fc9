"""Private inference on the client: embed locally, map into the provider's space, encrypt, let the
provider evaluate its head, decrypt logits. Only ciphertexts leave; decrypted values never do."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from helix_embeddings import Embedder
from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import decrypt_batch_logits, decrypt_logits, encrypt_batch, encrypt_queries
from helix_he.packing import LinearHeadLayout
from shared_protocol.messages import ClassifyBatchHeader, ClassifyHeader, HeadInfo

from .maps import StoredMap
from .provider_client import ProviderClient


class MapMismatch(ValueError):
    pass


@dataclass(frozen=True)
class Classification:
    logits: np.ndarray  # (n, k)
    probabilities: np.ndarray  # (n, k)
    labels: list[str]
    seconds: float  # wall time of the whole call (embedding included)
    he_seconds: float  # encrypt + round trip + decrypt
    bytes_sent: int
    bytes_received: int


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


def check_map(stored: StoredMap, embedder: Embedder, head: HeadInfo) -> None:
    if stored.meta.client_model_id != embedder.model_id:
        raise MapMismatch(
            f"map {stored.meta.map_id} was fitted for embedder {stored.meta.client_model_id!r}, "
            f"this agent embeds with {embedder.model_id!r}; run a new alignment"
        )
    if stored.affine.target_dim != head.dim:
        raise MapMismatch(
            f"map {stored.meta.map_id} maps into {stored.affine.target_dim} dims, head {head.id} expects {head.dim}"
        )


def classify_embeddings(
    provider: ProviderClient,
    keys: ClientKeys,
    key_id: str,
    head: HeadInfo,
    mapped: np.ndarray,
    batch_size: int,
    max_ciphertext_bytes: int,
) -> tuple[np.ndarray, int, int]:
    """Encrypted logits for every row of `mapped`. Many rows at once go feature-major (`dim`
    ciphertexts for up to N queries, ~6 KB uploaded per query at 4,096); a few rows go one ciphertext
    per query (131 KB per query, lowest latency). The switch is where the batch form uploads less."""
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    logits = []
    sent = recv = 0
    start = 0
    while start < mapped.shape[0]:
        remaining = mapped.shape[0] - start
        if remaining >= batch_threshold(head.dim):
            part = mapped[start : start + keys.he.n]
            bheader = ClassifyBatchHeader(
                head_id=head.id, key_id=key_id, num_queries=len(part), dim=head.dim, query_scale_bits=QUERY_SCALE_BITS
            )
            breply, out, s, r = provider.classify_batch(
                bheader, encrypt_batch(keys, part, layout), max_blob_bytes=max_ciphertext_bytes
            )
            logits.append(decrypt_batch_logits(keys, breply, out, max_bytes=max_ciphertext_bytes))
        else:
            part = mapped[start : start + batch_size]
            blobs = encrypt_queries(keys, part, layout)
            header = ClassifyHeader(
                head_id=head.id, key_id=key_id, num_queries=len(blobs), query_scale_bits=QUERY_SCALE_BITS
            )
            reply, out, s, r = provider.classify(header, blobs, max_blob_bytes=max_ciphertext_bytes)
            logits.append(decrypt_logits(keys, reply, out, max_bytes=max_ciphertext_bytes))
        start += len(part)
        sent += s
        recv += r
    return np.vstack(logits), sent, recv


def batch_threshold(dim: int) -> int:
    """Queries from which the feature-major batch uploads fewer bytes than one ciphertext per query."""
    return max(2, dim)


def classify_texts(
    provider: ProviderClient,
    embedder: Embedder,
    keys: ClientKeys,
    key_id: str,
    head: HeadInfo,
    stored: StoredMap,
    texts: list[str],
    batch_size: int,
    max_ciphertext_bytes: int,
) -> Classification:
    check_map(stored, embedder, head)
    t0 = time.perf_counter()
    x = embedder.embed(texts).astype(np.float64)
    mapped = stored.affine.apply(x)
    t1 = time.perf_counter()
    logits, sent, recv = classify_embeddings(provider, keys, key_id, head, mapped, batch_size, max_ciphertext_bytes)
    t2 = time.perf_counter()
    probs = softmax(logits)
    labels = [head.class_names[i] for i in np.argmax(logits, axis=1)]
    return Classification(logits, probs, labels, t2 - t0, t2 - t1, sent, recv)
