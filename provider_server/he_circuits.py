"""The provider's homomorphic circuits. The provider only evaluates: it holds no secret key and
decrypts nothing.

Both circuits are a single plaintext x ciphertext polynomial product (depth 1, one rescale), in the
coefficient packings of `shared_protocol.packing`. Before a reply leaves:

* no coefficient other than a requested output can be decrypted: inference replies carry c0 only at
  the output coefficients (`shared_protocol.rlwe.ReplyCiphertext`); in alignment results every other
  coefficient is overwritten with a value uniform modulo the prime (adding a uniform mask to
  anything gives a uniform result). Either way the client learns no partial products of W or Y_A;
* the ciphertext is re-randomised with a fresh encryption of zero under the client's public key.
  Without this the reply's second component would be the (rescaled) product of the client's own
  seeded polynomial with the provider's plaintext, which the client knows half of.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tenseal.sealapi as seal

from shared_protocol.ckks import CiphertextError, HEContext
from shared_protocol.modmath import U64, FixedMultiplier, addmod, dot_rows, small_lincomb, to_residues, uniform_mod
from shared_protocol.packing import CrossCovarianceLayout, LinearHeadLayout
from shared_protocol.rlwe import ReplyCiphertext, SeededCiphertext, centered_binomial, expand_uniform, ternary

WEIGHT_SCALE_BITS = 40  # Y_A's scale in the alignment product
# Inference runs entirely at the last level (one 60-bit prime, no rescale): query scale 2^26 times
# weight scale 2^22 leaves 2^11 of headroom for |logit| below q/2; the encryption noise (sigma 3.2 at
# the query scale) and the rounding of W cost ~1e-6 per logit (see docs/protocol.md for the budget).
HEAD_WEIGHT_SCALE_BITS = 22


def _flooding_noise(size: int, bits: int) -> np.ndarray:
    """Uniform integers in [-2^bits, 2^bits] for noise flooding (0 bits = off)."""
    if bits <= 0:
        return np.zeros(size, dtype=np.int64)
    raw = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) % np.uint64(2 ** (bits + 1) + 1)
    return raw.astype(np.int64) - np.int64(2**bits)


class MaskedReply:
    """Builds the additive plaintext that randomises every non-output coefficient of a reply."""

    def __init__(self, he: HEContext) -> None:
        self.he = he
        self.level = he.output_level
        self.q = self.level.primes[0]

    def plaintext(self, positions: np.ndarray, outputs: np.ndarray, scale: float, noise_bits: int = 0) -> seal.Plaintext:
        """Uniform mod q everywhere, except `positions`, which get round(outputs * scale) + noise."""
        coeffs = uniform_mod(self.q, self.he.n)
        vals = np.round(np.asarray(outputs, dtype=np.float64) * scale).astype(np.int64)
        vals = vals + _flooding_noise(len(vals), noise_bits)
        coeffs[positions] = (vals % np.int64(self.q)).astype(U64)
        ntt = self.he.ntt(self.q).forward(coeffs)
        return self.he.plaintext_from_ntt(ntt[None, :], self.level, scale)


class Rerandomizer:
    """Adds a fresh public-key encryption of zero to a reply (zero message, fresh randomness).

    Two forms: `apply` for SEAL ciphertexts (the alignment result), and `zero_parts` for the compact
    inference replies, computed on residues: Enc_pk(0) = (p0*u + e0, p1*u + e1) modulo the last
    prime, u ternary, e0/e1 centered binomial, (p0, p1) the client's public key. It decrypts to
    -e*u + e0 + e1*s, small noise, and makes c1 uniform to the client (an RLWE sample with secret u)."""

    def __init__(self, he: HEContext, public_key: seal.PublicKey) -> None:
        self.he = he
        self._encryptor = seal.Encryptor(he.context, public_key)
        key = he.ciphertext_data(public_key.data())  # (2, key-level primes, N); q0 is row 0
        self.q = he.output_level.primes[0]
        self._p0, self._p1 = FixedMultiplier(key[0, 0], self.q), FixedMultiplier(key[1, 0], self.q)

    def apply(self, ct: seal.Ciphertext) -> None:
        zero = seal.Ciphertext()
        self._encryptor.encrypt_zero(list(ct.parms_id()), zero)
        zero.scale = ct.scale  # the message is 0 at any scale; SEAL requires equal scales to add
        self.he.evaluator.add_inplace(ct, zero)

    def zero_parts_many(self, copies: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`copies` independent encryptions of zero at once (one NTT call for all of them), each as
        (p0*u in NTT form, e0 for `count` output coefficients, p1*u + e1 in NTT form)."""
        q, n = self.q, self.he.n
        small = np.concatenate([ternary(n * copies).reshape(copies, n), centered_binomial(n * copies).reshape(copies, n)])
        ntt = self.he.ntt(q).forward(to_residues(small, q))
        u, e1 = ntt[:copies], ntt[copies:]
        return self._p0(u), centered_binomial(count * copies).reshape(copies, count), addmod(self._p1(u), e1, q)


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
        self._batch_weights = np.round(weight.T * self.weight_scale).astype(np.int64)  # (k, d) for batches

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
            vals += e0 + _flooding_noise(len(pos), self.noise_flooding_bits)
            out.append(ReplyCiphertext(out_scale, addmod(c0, to_residues(vals, q), q), addmod(c1, r1, q)))
        return out


def encrypted_linear_head_batch(head: EncryptedLinearHead, features: Sequence[bytes], num_queries: int,
                                rerandomizer: Rerandomizer, *, max_ciphertext_bytes: int,
                                query_scale_bits: int) -> list[bytes]:
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
        if len(blob) > max_ciphertext_bytes:
            raise CiphertextError(f"feature ciphertext {i} of {len(blob)} bytes exceeds the limit of {max_ciphertext_bytes}")
        ct = SeededCiphertext.from_bytes(blob, level=lvl.index, primes=lvl.primes, n=n)
        if abs(ct.scale - 2.0**query_scale_bits) > 1e-6 * ct.scale:
            raise CiphertextError(f"feature ciphertext {i} scale is 2^{np.log2(ct.scale):.2f}, header says 2^{query_scale_bits}")
        c0[i] = ct.c0[0]
        c1[i] = expand_uniform(ct.seed, (q,), n)[0]
    out0 = small_lincomb(head._batch_weights, c0, q)
    out1 = small_lincomb(head._batch_weights, c1, q)
    out_scale = 2.0**query_scale_bits * head.weight_scale
    replies = []
    r0s, e0s, r1s = rerandomizer.zero_parts_many(head.layout.k, num_queries)
    for j in range(head.layout.k):
        r0, e0, r1 = r0s[j], e0s[j], r1s[j]
        body = he.ntt(q).inverse(addmod(out0[j], r0, q))[:num_queries]
        vals = np.full(num_queries, int(np.round(head.bias[j] * out_scale)), dtype=np.int64)
        vals += e0 + _flooding_noise(num_queries, head.noise_flooding_bits)
        reply = ReplyCiphertext(out_scale, addmod(body, to_residues(vals, q), q), addmod(out1[j], r1, q))
        replies.append(reply.to_bytes(q, lvl.index))
    return replies


def encrypted_linear_head(head: EncryptedLinearHead, queries: Sequence[bytes], rerandomizer: Rerandomizer, *,
                          max_ciphertext_bytes: int, query_scale_bits: int) -> list[list[bytes]]:
    """Validate and evaluate serialized query ciphertexts; return serialized replies per query."""
    he = head.he
    lvl = out_lvl = he.output_level
    replies = []
    for blob in queries:
        if len(blob) > max_ciphertext_bytes:
            raise CiphertextError(f"query ciphertext of {len(blob)} bytes exceeds the limit of {max_ciphertext_bytes}")
        ct = SeededCiphertext.from_bytes(blob, level=lvl.index, primes=lvl.primes, n=he.n)
        if abs(ct.scale - 2.0**query_scale_bits) > 1e-6 * ct.scale:
            raise CiphertextError(f"query ciphertext scale is 2^{np.log2(ct.scale):.2f}, header says 2^{query_scale_bits}")
        replies.append([r.to_bytes(out_lvl.primes[0], out_lvl.index) for r in head.evaluate(ct, rerandomizer)])
    return replies
