"""The private-inference circuit, both halves: the client encrypts a query and decrypts logits; the
provider evaluates its head x.W + b on the ciphertext. The provider holds no secret key and decrypts
nothing.

The circuit is a single plaintext x ciphertext polynomial product (depth 1, no rescale) in the
coefficient packing of `helix_he.packing.LinearHeadLayout`, or, for many queries, integer
combinations of feature-major ciphertexts (`LinearHeadLayout.batch_coefficients`). Before a reply
leaves the provider:

* no coefficient other than a requested output can be decrypted: replies carry c0 only at the
  output coefficients (`helix_he.rlwe.ReplyCiphertext`), so the client learns no partial products
  of W;
* the reply is re-randomised with a fresh encryption of zero under the client's public key
  (`helix_he.keys.Rerandomizer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .budget import HEAD_WEIGHT_SCALE_BITS, QUERY_SCALE_BITS, flooding_noise
from .context import CiphertextError, HEContext
from .keys import ClientKeys, Rerandomizer
from .modmath import U64, FixedMultiplier, addmod, dot_rows, small_lincomb, to_residues
from .packing import LinearHeadLayout
from .rlwe import ReplyCiphertext, SeededCiphertext, expand_uniform

# ================================================================================== client half


def encrypt_queries(keys: ClientKeys, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
    """One coefficient-packed ciphertext per query row, in compact seeded form."""
    scale = float(2**QUERY_SCALE_BITS)
    primes = keys.he.output_level.primes
    return [ct.to_bytes(primes) for ct in keys.encrypt_seeded(layout.query_coefficients(x, scale), scale)]


def encrypt_batch(keys: ClientKeys, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
    """Feature-major batch: up to N queries as `layout.d` ciphertexts (one per dimension)."""
    scale = float(2**QUERY_SCALE_BITS)
    primes = keys.he.output_level.primes
    return [ct.to_bytes(primes) for ct in keys.encrypt_seeded(layout.batch_coefficients(x, scale), scale)]


def _check_size(blob: bytes, max_bytes: int) -> None:
    if len(blob) > max_bytes:
        raise ValueError(f"reply ciphertext of {len(blob)} bytes exceeds the limit of {max_bytes}")


class BatchReplyShape(Protocol):
    """What the client needs to know about a batch reply (the wire header has these fields)."""

    @property
    def num_queries(self) -> int: ...
    @property
    def num_classes(self) -> int: ...


class ReplyShape(BatchReplyShape, Protocol):
    """A per-query reply: group g of each query carries classes `class_groups[g]` at
    `output_positions[g]`."""

    @property
    def class_groups(self) -> Sequence[Sequence[int]]: ...
    @property
    def output_positions(self) -> Sequence[Sequence[int]]: ...


@dataclass(frozen=True)
class LogitsShape:
    """A `ReplyShape` built from the layout itself (what the provider's reply header announces)."""

    num_queries: int
    num_classes: int
    class_groups: tuple[tuple[int, ...], ...]
    output_positions: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, layout: LinearHeadLayout, num_queries: int) -> LogitsShape:
        groups = layout.class_groups()
        return cls(
            num_queries,
            layout.k,
            tuple(tuple(g) for g in groups),
            tuple(tuple(int(p) for p in layout.output_positions(i)) for i in range(len(groups))),
        )


def decrypt_logits(keys: ClientKeys, shape: ReplyShape, blobs: Sequence[bytes], max_bytes: int = 1 << 22) -> np.ndarray:
    """(num_queries, num_classes) logits from one reply per (query, class group), query-major."""
    num_queries, num_classes = shape.num_queries, shape.num_classes
    class_groups, output_positions = shape.class_groups, shape.output_positions
    per = len(class_groups)
    if len(blobs) != num_queries * per:
        raise ValueError(f"reply has {len(blobs)} ciphertexts, expected {num_queries * per}")
    if len(output_positions) != per or any(
        len(c) != len(p) for c, p in zip(class_groups, output_positions, strict=True)
    ):
        raise ValueError("reply header's class groups and output positions do not match")
    logits = np.zeros((num_queries, num_classes))
    for qi in range(num_queries):
        for g in range(per):
            blob = blobs[qi * per + g]
            _check_size(blob, max_bytes)
            logits[qi, list(class_groups[g])] = keys.decrypt_reply(blob, np.asarray(output_positions[g]))
    return logits


def decrypt_batch_logits(
    keys: ClientKeys, shape: BatchReplyShape, blobs: Sequence[bytes], max_bytes: int = 1 << 22
) -> np.ndarray:
    """(num_queries, num_classes) logits from one reply per class (coefficients [0, num_queries))."""
    num_queries, num_classes = shape.num_queries, shape.num_classes
    if len(blobs) != num_classes:
        raise ValueError(f"batch reply has {len(blobs)} ciphertexts, expected {num_classes}")
    out = np.empty((num_queries, num_classes))
    for j, blob in enumerate(blobs):
        _check_size(blob, max_bytes)
        out[:, j] = keys.decrypt_prefix(blob, num_queries)
    return out


# ================================================================================== server half


class EncryptedLinearHead:
    """A head's W, b prepared once (weight polynomials in NTT form) for many queries.

    Per query: c = (c0, expand(seed)), encrypted at the last level, times the weight polynomial of each
    class group (no rescale: the scales' product fits the one prime), re-randomised, and reduced to
    what the client needs: c0 at the logit coefficients (plus bias and optional flooding noise) and c1
    whole. Everything runs on residues with the native kernel; no SEAL object is built per query."""

    def __init__(self, he: HEContext, weight: np.ndarray, bias: np.ndarray, *, noise_flooding_bits: int = 0) -> None:
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        self.he = he
        self.layout = LinearHeadLayout(n=he.n, d=weight.shape[0], k=weight.shape[1])
        if bias.shape != (self.layout.k,):
            raise ValueError(f"bias has shape {bias.shape}, expected ({self.layout.k},)")
        self.bias = bias
        self.noise_flooding_bits = noise_flooding_bits
        self.weight_scale = float(2**HEAD_WEIGHT_SCALE_BITS)
        q = he.output_level.primes[0]
        ntt = he.coeffs_to_ntt(self.layout.weight_coefficients(weight, self.weight_scale), he.output_level)
        self._weights = [FixedMultiplier(row[0], q) for row in ntt]
        self._groups = self.layout.class_groups()
        self._positions = [self.layout.output_positions(g) for g in range(len(self._groups))]
        self._rows = [he.ntt(q).coefficient_rows(pos) for pos in self._positions]  # c0's outputs, no full INTT
        self.batch_weights = np.round(weight.T * self.weight_scale).astype(np.int64)  # (k, d) for batches

    def evaluate(self, query: SeededCiphertext, rerandomizer: Rerandomizer) -> list[ReplyCiphertext]:
        """Enc(x) -> one reply per class group that decrypts to its logits x.W + b and nothing else."""
        he = self.he
        q = he.output_level.primes[0]
        polys = np.stack([query.c0[0], expand_uniform(query.seed, (q,), he.n)[0]])  # (c0, c1) in NTT form
        out_scale = query.scale * self.weight_scale
        out = []
        r0s, e0s, r1s = rerandomizer.zero_parts_many(len(self._weights), max(len(p) for p in self._positions))
        for g, w in enumerate(self._weights):
            c0, c1 = w(polys)
            pos = self._positions[g]
            r0, e0, r1 = r0s[g], e0s[g, : len(pos)], r1s[g]
            c0 = dot_rows(addmod(c0, r0, q), self._rows[g], q)
            vals = np.round(self.bias[list(self._groups[g])] * out_scale).astype(np.int64)
            vals += e0 + flooding_noise(len(pos), self.noise_flooding_bits)
            out.append(ReplyCiphertext(out_scale, addmod(c0, to_residues(vals, q), q), addmod(c1, r1, q)))
        return out


def parse_query(
    he: HEContext, blob: bytes, *, what: str, max_ciphertext_bytes: int, query_scale_bits: int
) -> SeededCiphertext:
    """An untrusted query ciphertext at the last level, at the scale its header declares."""
    lvl = he.output_level
    if len(blob) > max_ciphertext_bytes:
        raise CiphertextError(f"{what} of {len(blob)} bytes exceeds the limit of {max_ciphertext_bytes}")
    ct = SeededCiphertext.from_bytes(blob, level=lvl.index, primes=lvl.primes, n=he.n)
    if abs(ct.scale - 2.0**query_scale_bits) > 1e-6 * ct.scale:
        raise CiphertextError(f"{what} scale is 2^{np.log2(ct.scale):.2f}, header says 2^{query_scale_bits}")
    return ct


def encrypted_linear_head(
    head: EncryptedLinearHead,
    queries: Sequence[bytes],
    rerandomizer: Rerandomizer,
    *,
    max_ciphertext_bytes: int,
    query_scale_bits: int,
) -> list[list[bytes]]:
    """Validate and evaluate serialized query ciphertexts; return serialized replies per query."""
    lvl = head.he.output_level
    replies = []
    for blob in queries:
        ct = parse_query(
            head.he,
            blob,
            what="query ciphertext",
            max_ciphertext_bytes=max_ciphertext_bytes,
            query_scale_bits=query_scale_bits,
        )
        replies.append([r.to_bytes(lvl.primes[0], lvl.index) for r in head.evaluate(ct, rerandomizer)])
    return replies


def encrypted_linear_head_batch(
    head: EncryptedLinearHead,
    features: Sequence[bytes],
    num_queries: int,
    rerandomizer: Rerandomizer,
    *,
    max_ciphertext_bytes: int,
    query_scale_bits: int,
) -> list[bytes]:
    """Feature-major batch (`LinearHeadLayout.batch_coefficients`): d query ciphertexts in, one reply
    per class out, coefficient t of reply j decrypting to logit j of query t for t < num_queries.

    Each reply is sum_i round(W[i, j] * 2^22) * ct_i, computed on c0 and on the expanded c1 by an
    integer-combination kernel, then re-randomised like a single-query reply, with the bias added
    at coefficients [0, num_queries) and c0 sent only there. Coefficient t depends only on
    coefficient t of the inputs, so a reply holds exactly the batch's logits."""
    he = head.he
    lvl = he.output_level
    q, n = lvl.primes[0], he.n
    if len(features) != head.layout.d:
        raise CiphertextError(f"a batch for this head has {head.layout.d} feature ciphertexts, got {len(features)}")
    if not 1 <= num_queries <= n:
        raise CiphertextError(f"a batch holds 1 to {n} queries, got {num_queries}")
    c0 = np.empty((len(features), n), dtype=U64)
    c1 = np.empty((len(features), n), dtype=U64)
    for i, blob in enumerate(features):
        ct = parse_query(
            he,
            blob,
            what=f"feature ciphertext {i}",
            max_ciphertext_bytes=max_ciphertext_bytes,
            query_scale_bits=query_scale_bits,
        )
        c0[i] = ct.c0[0]
        c1[i] = expand_uniform(ct.seed, (q,), n)[0]
    out0 = small_lincomb(head.batch_weights, c0, q)
    out1 = small_lincomb(head.batch_weights, c1, q)
    out_scale = 2.0**query_scale_bits * head.weight_scale
    replies = []
    r0s, e0s, r1s = rerandomizer.zero_parts_many(head.layout.k, num_queries)
    for j in range(head.layout.k):
        r0, e0, r1 = r0s[j], e0s[j], r1s[j]
        body = he.ntt(q).inverse(addmod(out0[j], r0, q))[:num_queries]
        vals = np.full(num_queries, int(np.round(head.bias[j] * out_scale)), dtype=np.int64)
        vals += e0 + flooding_noise(num_queries, head.noise_flooding_bits)
        reply = ReplyCiphertext(out_scale, addmod(body, to_residues(vals, q), q), addmod(out1[j], r1, q))
        replies.append(reply.to_bytes(q, lvl.index))
    return replies
