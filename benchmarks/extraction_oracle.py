"""The provider's real head circuit behind a client's own keys, in one process, counting what a client pays.

Why in-process: an extraction attack is a question of how many queries buy how much of the head, and what
each query costs the provider's circuit; the HTTP layer adds the same per-request cost for an honest client
as for an attacker. The wiring is the provider worker's (`provider_server.workers.jobs.ClassifyJob`): the
head is `prepare_head` in its output mode with the configured flooding, the client's public key is
registered on a fresh challenge seed and loaded with `load_public_key` (so its uniform half is the
provider's), each reply is re-randomised by a `Rerandomizer` on that key, and every query goes through
`encrypted_linear_head` (parse, pinned scale and level, product, re-randomisation, serialization) as bytes.

The client holds its own secret key, as a malicious client does; what it may not do is step outside what
the provider accepts: queries at the pinned scale, single-query requests of at most 512 queries, and
feature-major batches only for `logits` heads. Inside that it chooses any values, of any magnitude.
"""

from __future__ import annotations

import os
import time

import numpy as np

from helix_he.budget import QUERY_SCALE_BITS
from helix_he.keys import ClientKeys, Rerandomizer, load_public_key
from helix_he.linear_head import (
    LOGITS,
    RANKING,
    EncryptedLinearHead,
    HeadCircuit,
    LogitsShape,
    decrypt_batch_logits,
    decrypt_logits,
    decrypt_ranking_differences,
    encrypt_batch,
    encrypt_queries,
    encrypted_linear_head,
    encrypted_linear_head_batch,
    prepare_head,
)
from helix_he.seeded_keys import CHALLENGE_SEED_BYTES

#: The provider's defaults (`provider_server.settings`): queries per request, bytes per ciphertext.
MAX_QUERIES_PER_REQUEST = 512
MAX_CIPHERTEXT_BYTES = 1 << 20


class HeadOracle:
    """One head in one output mode, as the provider serves it, and a client's key registered with it.

    `ask` answers single-query requests (split into requests of `MAX_QUERIES_PER_REQUEST`): logits in
    `logits` mode, the pairwise differences r_p (z_i - z_j) in `ranking` mode. `ask_batch` is the
    feature-major batch (`logits` heads only). `queries`, `requests` and `seconds` (client encryption,
    provider evaluation and client decryption, wall clock) add up everything asked so far."""

    def __init__(
        self,
        keys: ClientKeys,
        weight: np.ndarray,
        bias: np.ndarray,
        *,
        output_mode: str,
        noise_flooding_bits: int,
    ) -> None:
        self.keys = keys
        he = keys.he
        seed = os.urandom(CHALLENGE_SEED_BYTES)  # the provider's challenge for this registration
        public_key = load_public_key(he.params.name, keys.public_key_bytes(seed), seed)
        self.rerandomizer = Rerandomizer(he, public_key)
        self.head: HeadCircuit = prepare_head(
            he, weight, bias, output_mode=output_mode, noise_flooding_bits=noise_flooding_bits
        )
        self.output_mode = output_mode
        self.num_classes = int(np.asarray(weight).shape[1])
        self.dim = int(np.asarray(weight).shape[0])
        self.queries = 0
        self.requests = 0
        self.seconds = 0.0

    @property
    def num_outputs(self) -> int:
        """Values per answer: k logits, or k (k - 1) / 2 pairwise differences."""
        return self.head.layout.k

    def ask(self, x: np.ndarray) -> np.ndarray:
        """(m, outputs) answers to the rows of x, in requests of at most `MAX_QUERIES_PER_REQUEST`."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        parts = [self._request(x[s : s + MAX_QUERIES_PER_REQUEST]) for s in range(0, len(x), MAX_QUERIES_PER_REQUEST)]
        return np.concatenate(parts) if parts else np.zeros((0, self.num_outputs))

    def _request(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        layout = self.head.layout
        blobs = encrypt_queries(self.keys, x, layout)
        replies = encrypted_linear_head(
            self.head,
            blobs,
            self.rerandomizer,
            max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES,
            query_scale_bits=QUERY_SCALE_BITS,
        )
        flat = [r for per_query in replies for r in per_query]
        shape = LogitsShape.of(layout, len(x))
        if self.output_mode == RANKING:
            shape = LogitsShape(len(x), self.num_classes, shape.class_groups, shape.output_positions)
            out = decrypt_ranking_differences(self.keys, shape, flat)
        else:
            out = decrypt_logits(self.keys, shape, flat)
        self._count(len(x), time.perf_counter() - t0)
        return out

    def ask_batch(self, x: np.ndarray) -> np.ndarray:
        """(m, k) logits of a feature-major batch request (m <= `MAX_QUERIES_PER_REQUEST`)."""
        if self.output_mode != LOGITS or not isinstance(self.head, EncryptedLinearHead):
            raise ValueError("feature-major batches are answered by logits heads only")
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if not 1 <= len(x) <= MAX_QUERIES_PER_REQUEST:
            raise ValueError(f"a batch request holds 1 to {MAX_QUERIES_PER_REQUEST} queries, got {len(x)}")
        t0 = time.perf_counter()
        features = encrypt_batch(self.keys, x, self.head.layout)
        replies = encrypted_linear_head_batch(
            self.head,
            features,
            len(x),
            self.rerandomizer,
            max_ciphertext_bytes=MAX_CIPHERTEXT_BYTES,
            query_scale_bits=QUERY_SCALE_BITS,
        )
        out = decrypt_batch_logits(self.keys, LogitsShape.of(self.head.layout, len(x)), replies)
        self._count(len(x), time.perf_counter() - t0)
        return out

    def _count(self, queries: int, seconds: float) -> None:
        self.queries += queries
        self.requests += 1
        self.seconds += seconds
