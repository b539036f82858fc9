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

A head answers in one of two output modes, the provider's policy per head:

* `logits`: the k logits x.W + b per query;
* `ranking`: for every pair (i, j), i < j, of classes (`ranking_pairs`), r_ij * (z_i - z_j) with a
  fresh secret factor r_ij, log-uniform on [1, 2^8), per pair and per query. The client learns the
  order of the logits (hence the label) from the signs, and each magnitude only within a factor
  2^8. Independent factors per pair are what hide the magnitudes: differences against one reference
  class with one factor per query would be cheaper (k - 1 outputs) but reveal the k - 2 ratios
  between them, which fix the head up to one scale after about d queries; and with independent
  factors they would no longer give the order of the other classes. Each factor is applied to the
  difference weights before they are rounded, so it is real-valued and cannot be divided out.
  A feature-major batch cannot draw a factor per query (its replies are integer combinations shared
  by all the batch's queries), so ranking heads answer single-query ciphertexts only.

The query's scale and level are pinned (`QUERY_SCALE_BITS`, the last level), so an honest-format
query has one meaning and the flooding width the one precision the budget states; other scales
overflowed the headroom or read the outputs 2^t times more precisely. A client can still encode
scaled values at the pinned scale (|x| cannot be checked): flooding is circuit privacy for
honest-format queries, not a defence against extraction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Protocol

import numpy as np

from .budget import RANKING_FACTOR_BITS, flooding_bits_at, flooding_noise, ranking_factors
from .context import CiphertextError, HEContext
from .keys import ClientKeys, Rerandomizer
from .modmath import U64, FixedMultiplier, addmod, dot_rows, mulmod, small_lincomb, switch_to_power_of_two, to_residues
from .packing import LinearHeadLayout
from .params import CKKSParameterSet
from .rlwe import ReplyCiphertext, SeededCiphertext, expand_uniform

#: The output modes a head can answer in (`EncryptedLinearHead`, `EncryptedRankingHead`).
LOGITS = "logits"
RANKING = "ranking"
OUTPUT_MODES = (LOGITS, RANKING)


def ranking_pairs(num_classes: int) -> list[tuple[int, int]]:
    """The class pairs (i, j), i < j, of a ranking reply in output order: output p is
    r_p * (z_i - z_j) for pair p."""
    return list(combinations(range(num_classes), 2))


# ================================================================================== client half


def encrypt_queries(keys: ClientKeys, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
    """One coefficient-packed ciphertext per query row, in compact seeded form, at the parameter set's
    pinned query scale."""
    scale = float(2**keys.he.params.query_scale_bits)
    primes = keys.he.output_level.primes
    return [ct.to_bytes(primes) for ct in keys.encrypt_seeded(layout.query_coefficients(x, scale), scale)]


def encrypt_batch(keys: ClientKeys, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
    """Feature-major batch: up to N queries as `layout.d` ciphertexts (one per dimension)."""
    scale = float(2**keys.he.params.query_scale_bits)
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
    return _decrypt_outputs(keys, shape, blobs, shape.num_classes, max_bytes)


def decrypt_ranking_differences(
    keys: ClientKeys, shape: ReplyShape, blobs: Sequence[bytes], max_bytes: int = 1 << 22
) -> np.ndarray:
    """(num_queries, pairs) of a ranking reply: r_p * (z_i - z_j) for pair p = (i, j) of
    `ranking_pairs(shape.num_classes)`, r_p an unknown factor in [1, 2^8); the reply's class groups
    index the pairs."""
    return _decrypt_outputs(keys, shape, blobs, len(ranking_pairs(shape.num_classes)), max_bytes)


def ranking_from_differences(differences: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_queries, num_classes) class indices, best first, from the signs of the pairwise
    differences: a class ranks by the pairs it wins (exact ties win for neither, equal counts keep
    the class order). Consistent signs (all but exact near-ties) give the order of the logits."""
    differences = np.atleast_2d(np.asarray(differences, dtype=np.float64))
    wins = np.zeros((differences.shape[0], num_classes), dtype=np.int64)
    for p, (i, j) in enumerate(ranking_pairs(num_classes)):
        wins[:, i] += differences[:, p] > 0
        wins[:, j] += differences[:, p] < 0
    order: np.ndarray = np.argsort(-wins, axis=1, kind="stable")
    return order


def _decrypt_outputs(
    keys: ClientKeys, shape: ReplyShape, blobs: Sequence[bytes], num_outputs: int, max_bytes: int
) -> np.ndarray:
    num_queries = shape.num_queries
    class_groups, output_positions = shape.class_groups, shape.output_positions
    per = len(class_groups)
    if len(blobs) != num_queries * per:
        raise ValueError(f"reply has {len(blobs)} ciphertexts, expected {num_queries * per}")
    if len(output_positions) != per or any(
        len(c) != len(p) for c, p in zip(class_groups, output_positions, strict=True)
    ):
        raise ValueError("reply header's class groups and output positions do not match")
    if sorted(i for g in class_groups for i in g) != list(range(num_outputs)):
        raise ValueError(f"reply header's groups do not cover the {num_outputs} outputs exactly once")
    out = np.zeros((num_queries, num_outputs))
    for qi in range(num_queries):
        for g in range(per):
            blob = blobs[qi * per + g]
            _check_size(blob, max_bytes)
            out[qi, list(class_groups[g])] = keys.decrypt_reply(blob, np.asarray(output_positions[g]))
    return out


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
    """A head's W, b prepared once (weight polynomials in NTT form) for many queries (`logits` mode).

    Per query: c = (c0, expand(seed)), encrypted at the last level, times the weight polynomial of each
    class group (no rescale: the scales' product fits the one prime), re-randomised, and reduced to
    what the client needs: c0 at the logit coefficients (plus bias and optional flooding noise) and c1
    whole. Everything runs on residues with the native kernel; no SEAL object is built per query."""

    output_mode = LOGITS

    def __init__(self, he: HEContext, weight: np.ndarray, bias: np.ndarray, *, noise_flooding_bits: int = 0) -> None:
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        self.he = he
        self.layout = LinearHeadLayout(n=he.n, d=weight.shape[0], k=weight.shape[1])
        if bias.shape != (self.layout.k,):
            raise ValueError(f"bias has shape {bias.shape}, expected ({self.layout.k},)")
        self.bias = bias
        self.noise_flooding_bits = flooding_bits_at(he.params.product_scale_bits, noise_flooding_bits)
        self.weight_scale = float(2**he.params.weight_scale_bits)
        q = he.output_level.primes[0]
        ntt = he.coeffs_to_ntt(self.layout.weight_coefficients(weight, self.weight_scale), he.output_level)
        self._weights = [FixedMultiplier(row[0], q) for row in ntt]
        self._outputs = _OutputCoefficients(he, self.layout)
        self.batch_weights = np.round(weight.T * self.weight_scale).astype(np.int64)  # (k, d) for batches

    def evaluate(self, query: SeededCiphertext, rerandomizer: Rerandomizer) -> list[ReplyCiphertext]:
        """Enc(x) -> one reply per class group that decrypts to its logits x.W + b and nothing else."""
        out_scale = query.scale * self.weight_scale
        groups = self._outputs.groups

        def values(g: int) -> np.ndarray:
            vals: np.ndarray = np.round(self.bias[list(groups[g])] * out_scale).astype(np.int64)
            vals += flooding_noise(len(groups[g]), self.noise_flooding_bits)
            return vals

        return self._outputs.replies(query, lambda g, polys: self._weights[g](polys), values, out_scale, rerandomizer)


class EncryptedRankingHead:
    """A head in `ranking` mode: per query, every pairwise logit difference z_i - z_j (i < j, in
    `ranking_pairs` order) times a fresh secret factor r in [1, 2^8), plus flooding.

    The difference head dW[:, p] = W[:, i] - W[:, j], db[p] = b_i - b_j is itself linear, so it is
    the same circuit as `EncryptedLinearHead` with one output per pair. The factors are drawn per
    query and per pair and multiplied into the difference weights before they are rounded at
    2^(22 - 8) and transformed (one NTT per class group and query, ~0.1 ms): r times the weight
    scale stays within the logits mode's 2^22, so the noise term x.e.W'' is never larger than in
    logits mode and the headroom is the same. The reply's scale is query scale x 2^14, so an
    output decrypts to r_p * (z_i - z_j). Flooding is drawn as r_p * U[-2^(b-8), 2^(b-8)]: the
    same 2^(b - 48) in logit units as logits mode, and the same width relative to the noise term
    it hides."""

    output_mode = RANKING

    def __init__(self, he: HEContext, weight: np.ndarray, bias: np.ndarray, *, noise_flooding_bits: int = 0) -> None:
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        if weight.ndim != 2 or weight.shape[1] < 2:
            raise ValueError("a ranking head needs weights (d, k) with at least two classes")
        if bias.shape != (weight.shape[1],):
            raise ValueError(f"bias has shape {bias.shape}, expected ({weight.shape[1]},)")
        self.he = he
        self.num_classes = weight.shape[1]
        self.pairs = ranking_pairs(self.num_classes)
        first = [i for i, _ in self.pairs]
        second = [j for _, j in self.pairs]
        self.diff_weight = weight[:, first] - weight[:, second]  # (d, pairs)
        self.diff_bias = bias[first] - bias[second]
        self.layout = LinearHeadLayout(n=he.n, d=weight.shape[0], k=len(self.pairs))
        self.noise_flooding_bits = flooding_bits_at(he.params.product_scale_bits, noise_flooding_bits)
        self.weight_scale = float(2 ** (he.params.weight_scale_bits - RANKING_FACTOR_BITS))
        self._outputs = _OutputCoefficients(he, self.layout)

    def evaluate(self, query: SeededCiphertext, rerandomizer: Rerandomizer) -> list[ReplyCiphertext]:
        """Enc(x) -> one reply per group of pairs that decrypts to r_p (z_i - z_j) and nothing else."""
        he = self.he
        q = he.output_level.primes[0]
        factors = ranking_factors(len(self.pairs))
        coeffs = self.layout.weight_coefficients(self.diff_weight * factors, self.weight_scale)
        weights = he.coeffs_to_ntt(coeffs, he.output_level)[:, 0]  # (groups, N), fresh for this query only
        out_scale = query.scale * self.weight_scale
        groups = self._outputs.groups
        flood_bits = self.noise_flooding_bits - RANKING_FACTOR_BITS

        def values(g: int) -> np.ndarray:
            r = factors[list(groups[g])]
            vals: np.ndarray = np.round(self.diff_bias[list(groups[g])] * r * out_scale).astype(np.int64)
            vals += np.round(r * flooding_noise(len(r), flood_bits)).astype(np.int64)
            return vals

        return self._outputs.replies(
            query, lambda g, polys: mulmod(polys, weights[g][None, :], q), values, out_scale, rerandomizer
        )


class _OutputCoefficients:
    """What both modes share after the product: re-randomise each group's (c0, c1), keep c0 at the
    group's output coefficients only (no full inverse NTT), add the plaintext values there."""

    def __init__(self, he: HEContext, layout: LinearHeadLayout) -> None:
        self.he = he
        q = he.output_level.primes[0]
        self.groups = layout.class_groups()
        self.positions = [layout.output_positions(g) for g in range(len(self.groups))]
        self.rows = [he.ntt(q).coefficient_rows(pos) for pos in self.positions]

    def replies(
        self,
        query: SeededCiphertext,
        product: Callable[[int, np.ndarray], np.ndarray],
        values: Callable[[int], np.ndarray],
        out_scale: float,
        rerandomizer: Rerandomizer,
    ) -> list[ReplyCiphertext]:
        """`product(g, (c0, c1))`: the query times group g's weight polynomial (NTT form);
        `values(g)`: the integers added at group g's outputs (bias, flooding)."""
        he = self.he
        q = he.output_level.primes[0]
        switched = bool(he.params.reply_modulus_bits)
        polys = np.stack([query.c0[0], expand_uniform(query.seed, (q,), he.n)[0]])  # (c0, c1) in NTT form
        zeros = rerandomizer.fresh_zeros(len(self.groups))
        out = []
        for g, pos in enumerate(self.positions):
            c0, c1 = product(g, polys)
            c0 = addmod(dot_rows(addmod(c0, zeros[g].p0u, q), self.rows[g], q), zeros[g].e0[pos], q)
            c1 = addmod(he.ntt(q).inverse(c1) if switched else c1, zeros[g].c1, q)
            out.append(finish_reply(he, out_scale, addmod(c0, to_residues(values(g), q), q), c1))
        return out


def finish_reply(he: HEContext, scale: float, c0: np.ndarray, c1: np.ndarray) -> ReplyCiphertext:
    """The reply as it leaves: c0 (coefficients at the outputs) and c1 under the prime (NTT form), or, if
    the parameter set has a reply modulus, both switched down to 2^bits (c1 given as coefficients): the
    smaller modulus is all the outputs need once the product is done, and what the reply's bytes
    scale with."""
    bits = he.params.reply_modulus_bits
    if not bits:
        return ReplyCiphertext(scale, c0, c1)
    q = he.output_level.primes[0]
    return ReplyCiphertext(
        scale * 2.0**bits / q, switch_to_power_of_two(c0, q, bits), switch_to_power_of_two(c1, q, bits), bits
    )


HeadCircuit = EncryptedLinearHead | EncryptedRankingHead


def prepare_head(
    he: HEContext, weight: np.ndarray, bias: np.ndarray, *, output_mode: str, noise_flooding_bits: int = 0
) -> HeadCircuit:
    """The server half of a head in its output mode (`OUTPUT_MODES`)."""
    if output_mode == LOGITS:
        return EncryptedLinearHead(he, weight, bias, noise_flooding_bits=noise_flooding_bits)
    if output_mode == RANKING:
        return EncryptedRankingHead(he, weight, bias, noise_flooding_bits=noise_flooding_bits)
    raise ValueError(f"unknown output mode {output_mode!r}; expected one of {OUTPUT_MODES}")


def check_query_scale_bits(declared: int, params: CKKSParameterSet, *, what: str = "query") -> None:
    """The provider accepts exactly the parameter set's pinned query scale; a client that declares
    another gets a CiphertextError naming both."""
    if declared != params.query_scale_bits:
        raise CiphertextError(
            f"{what} scale 2^{declared} is not accepted: queries under {params.name} must be encoded at the "
            f"pinned scale 2^{params.query_scale_bits}"
        )


def parse_query(
    he: HEContext, blob: bytes, *, what: str, max_ciphertext_bytes: int, query_scale_bits: int
) -> SeededCiphertext:
    """An untrusted query ciphertext at the last level and at the pinned scale, which its header
    must declare too."""
    check_query_scale_bits(query_scale_bits, he.params, what=f"{what}: declared")
    lvl = he.output_level
    if len(blob) > max_ciphertext_bytes:
        raise CiphertextError(f"{what} of {len(blob)} bytes exceeds the limit of {max_ciphertext_bytes}")
    ct = SeededCiphertext.from_bytes(blob, level=lvl.index, primes=lvl.primes, n=he.n)
    pinned_bits = he.params.query_scale_bits
    pinned = 2.0**pinned_bits
    if abs(ct.scale - pinned) > 1e-6 * pinned:
        raise CiphertextError(f"{what} scale is 2^{np.log2(ct.scale):.2f}, the pinned query scale is 2^{pinned_bits}")
    return ct


def encrypted_linear_head(
    head: HeadCircuit,
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
    out_scale = 2.0**he.params.query_scale_bits * head.weight_scale
    switched = bool(he.params.reply_modulus_bits)
    replies = []
    zeros = rerandomizer.fresh_zeros(head.layout.k)
    for j in range(head.layout.k):
        body = he.ntt(q).inverse(addmod(out0[j], zeros[j].p0u, q))[:num_queries]
        body = addmod(body, zeros[j].e0[:num_queries], q)
        vals = np.full(num_queries, int(np.round(head.bias[j] * out_scale)), dtype=np.int64)
        vals += flooding_noise(num_queries, head.noise_flooding_bits)
        c1 = addmod(he.ntt(q).inverse(out1[j]) if switched else out1[j], zeros[j].c1, q)
        reply = finish_reply(he, out_scale, addmod(body, to_residues(vals, q), q), c1)
        replies.append(reply.to_bytes(q, lvl.index))
    return replies
