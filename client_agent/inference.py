"""Private inference on the client: embed locally, map into the provider's space, encrypt, let the
provider evaluate its head, decrypt what the head's output mode reveals. Only ciphertexts leave;
decrypted values never do.

A `logits` head answers logits, from which the agent reports softmax probabilities, the ranking and
the label. A `ranking` head answers each pairwise logit difference times a secret factor per pair
and query: the agent reports the ranking (from the signs) and the label, and no logits or
probabilities, since the magnitudes it decrypts are the provider's random factors, not the head's
confidence."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from helix_embeddings import Embedder
from helix_he.keys import ClientKeys
from helix_he.linear_head import (
    decrypt_batch_logits,
    decrypt_logits,
    decrypt_ranking_differences,
    encrypt_batch,
    encrypt_queries,
    ranking_from_differences,
)
from helix_he.packing import LinearHeadLayout
from shared_protocol.messages import ClassifyBatchHeader, ClassifyHeader, ClassifyReplyHeader, HeadInfo, OutputMode

from .maps import StoredMap
from .provider_client import ProviderClient


class MapMismatch(ValueError):
    pass


class ReplyMismatch(ValueError):
    """The provider answered in another output mode than the one asked for (the head changed)."""


@dataclass(frozen=True)
class Classification:
    output_mode: OutputMode
    ranking: np.ndarray  # (n, k) class indices, best first
    labels: list[str]
    logits: np.ndarray | None  # (n, k) in logits mode; None in ranking mode (no magnitudes are revealed)
    probabilities: np.ndarray | None  # softmax of the logits; None in ranking mode
    seconds: float  # wall time of the whole call (embedding included)
    he_seconds: float  # encrypt + round trip + decrypt
    bytes_sent: int
    bytes_received: int


@dataclass(frozen=True)
class EncryptedOutputs:
    """What the provider's replies decrypted to, for every row: logits, or scaled pairwise differences."""

    output_mode: OutputMode
    values: np.ndarray  # (n, k) logits, or (n, pairs) r * (z_i - z_j) in `ranking_pairs` order
    bytes_sent: int
    bytes_received: int

    def ranking(self, num_classes: int) -> np.ndarray:
        if self.output_mode == OutputMode.logits:
            order: np.ndarray = np.argsort(-self.values, axis=1, kind="stable")
            return order
        return ranking_from_differences(self.values, num_classes)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


def check_map(stored: StoredMap, embedder: Embedder, head: HeadInfo) -> None:
    """The map (or, provider-held, the derived `head`) fits this embedder and the head it feeds."""
    if stored.meta.client_model_id != embedder.model_id:
        raise MapMismatch(
            f"map {stored.meta.map_id} was fitted for embedder {stored.meta.client_model_id!r}, "
            f"this agent embeds with {embedder.model_id!r}; run a new alignment"
        )
    if stored.provider_held:
        if head.id != stored.meta.derived_head_id or head.dim != stored.meta.source_dim:
            raise MapMismatch(
                f"alignment {stored.meta.map_id} is folded into head {stored.meta.derived_head_id!r} of "
                f"{stored.meta.source_dim} inputs, not head {head.id!r} of {head.dim}"
            )
        return
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
) -> EncryptedOutputs:
    """Encrypted outputs for every row of `mapped`, in the head's output mode. Many rows at once go
    feature-major (`dim` ciphertexts for up to N queries, ~6 KB uploaded per query at 4,096) for a
    logits head; a few rows, and every row for a ranking head (its factors are drawn per query,
    which a shared batch cannot do), go one ciphertext per query (lowest latency; ~39 kB per query and
    reply under ckks-n4096-q47).
    The switch is where the batch form uploads less."""
    mode = head.output_mode
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    values = []
    sent = recv = 0
    start = 0
    while start < mapped.shape[0]:
        remaining = mapped.shape[0] - start
        if mode == OutputMode.logits and remaining >= batch_threshold(head.dim):
            part = mapped[start : start + keys.he.n]
            bheader = ClassifyBatchHeader(
                head_id=head.id,
                key_id=key_id,
                num_queries=len(part),
                dim=head.dim,
                query_scale_bits=keys.he.params.query_scale_bits,
            )
            breply, out, s, r = provider.classify_batch(
                bheader, encrypt_batch(keys, part, layout), max_blob_bytes=max_ciphertext_bytes
            )
            values.append(decrypt_batch_logits(keys, breply, out, max_bytes=max_ciphertext_bytes))
        else:
            part = mapped[start : start + batch_size]
            blobs = encrypt_queries(keys, part, layout)
            header = ClassifyHeader(
                head_id=head.id, key_id=key_id, num_queries=len(blobs), query_scale_bits=keys.he.params.query_scale_bits
            )
            reply, out, s, r = provider.classify(header, blobs, max_blob_bytes=max_ciphertext_bytes)
            values.append(decrypt_reply(keys, mode, reply, out, max_ciphertext_bytes))
        start += len(part)
        sent += s
        recv += r
    return EncryptedOutputs(mode, np.vstack(values), sent, recv)


def decrypt_reply(
    keys: ClientKeys, mode: OutputMode, reply: ClassifyReplyHeader, blobs: list[bytes], max_bytes: int
) -> np.ndarray:
    """Decrypt a per-query reply in the mode asked for; a reply in another mode is refused (the head
    was replaced meanwhile) rather than read wrongly."""
    if reply.output_mode != mode:
        raise ReplyMismatch(
            f"head {reply.head_id!r} answered in {reply.output_mode.value} mode, expected {mode.value}; "
            "its description changed, try again"
        )
    if mode == OutputMode.logits:
        return decrypt_logits(keys, reply, blobs, max_bytes=max_bytes)
    return decrypt_ranking_differences(keys, reply, blobs, max_bytes=max_bytes)


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
    """`head` is the head evaluated: the map's head for a client-held map (the agent maps x_B first),
    the derived head for a provider-held one (the agent sends x_B itself: the map is inside the head)."""
    check_map(stored, embedder, head)
    t0 = time.perf_counter()
    x = embedder.embed(texts).astype(np.float64)
    mapped = x if stored.provider_held else stored.affine.apply(x)
    t1 = time.perf_counter()
    outputs = classify_embeddings(provider, keys, key_id, head, mapped, batch_size, max_ciphertext_bytes)
    t2 = time.perf_counter()
    ranking = outputs.ranking(head.num_classes)
    labels = [head.class_names[i] for i in ranking[:, 0]]
    logits = outputs.values if outputs.output_mode == OutputMode.logits else None
    return Classification(
        output_mode=outputs.output_mode,
        ranking=ranking,
        labels=labels,
        logits=logits,
        probabilities=None if logits is None else softmax(logits),
        seconds=t2 - t0,
        he_seconds=t2 - t1,
        bytes_sent=outputs.bytes_sent,
        bytes_received=outputs.bytes_received,
    )
