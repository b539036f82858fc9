"""The provider's homomorphic circuits. The provider only evaluates: it holds no secret key and
decrypts nothing.

Both circuits are a single plaintext x ciphertext polynomial product (depth 1, one rescale), in the
coefficient packings of `shared_protocol.packing`. Before a reply leaves:

* every coefficient that is not a requested output is overwritten with a value uniform modulo the
  ciphertext's prime (adding a uniform mask to anything gives a uniform result), so the decrypted
  reply carries no partial products of W or of Y_A;
* the ciphertext is re-randomised with a fresh encryption of zero under the client's public key.
  Without this the reply's second component would be the (rescaled) product of the client's own
  seeded polynomial with the provider's plaintext, which the client knows half of.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tenseal.sealapi as seal

from shared_protocol.ckks import HEContext, save_to_bytes
from shared_protocol.modmath import U64, ColumnAccumulator, to_residues, uniform_mod, vandermonde
from shared_protocol.packing import CrossCovarianceLayout, LinearHeadLayout

WEIGHT_SCALE_BITS = 40


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
    """Adds a fresh public-key encryption of zero to a reply (zero message, fresh randomness)."""

    def __init__(self, he: HEContext, public_key: seal.PublicKey) -> None:
        self.he = he
        self._encryptor = seal.Encryptor(he.context, public_key)

    def apply(self, ct: seal.Ciphertext) -> None:
        zero = seal.Ciphertext()
        self._encryptor.encrypt_zero(list(ct.parms_id()), zero)
        zero.scale = ct.scale  # the message is 0 at any scale; SEAL requires equal scales to add
        self.he.evaluator.add_inplace(ct, zero)


class EncryptedLinearHead:
    """A head's W, b prepared once (weight plaintexts in NTT form) for many queries."""

    def __init__(self, he: HEContext, weight: np.ndarray, bias: np.ndarray, *, noise_flooding_bits: int = 0) -> None:
        weight = np.asarray(weight, dtype=np.float64)
        bias = np.asarray(bias, dtype=np.float64).reshape(-1)
        self.he = he
        self.layout = LinearHeadLayout(n=he.n, d=weight.shape[0], k=weight.shape[1])
        if bias.shape != (self.layout.k,):
            raise ValueError(f"bias has shape {bias.shape}, expected ({self.layout.k},)")
        self.bias = bias
        self.noise_flooding_bits = noise_flooding_bits
        self.weight_scale = float(2**WEIGHT_SCALE_BITS)
        coeffs = self.layout.weight_coefficients(weight, self.weight_scale)
        ntt = he.coeffs_to_ntt(coeffs, he.input_level)
        self._weights = [he.plaintext_from_ntt(ntt[g], he.input_level, self.weight_scale) for g in range(len(coeffs))]
        self._groups = self.layout.class_groups()
        self._positions = [self.layout.output_positions(g) for g in range(len(self._groups))]
        self._mask = MaskedReply(he)

    def evaluate(self, query: seal.Ciphertext, rerandomizer: Rerandomizer) -> list[seal.Ciphertext]:
        """Enc(x) -> one ciphertext per class group holding its logits x.W + b and nothing else."""
        ev = self.he.evaluator
        out = []
        for g, pt in enumerate(self._weights):
            ct = seal.Ciphertext()
            ev.multiply_plain(query, pt, ct)
            ev.rescale_to_next_inplace(ct)
            mask = self._mask.plaintext(self._positions[g], self.bias[list(self._groups[g])], ct.scale, self.noise_flooding_bits)
            ev.add_plain_inplace(ct, mask)
            rerandomizer.apply(ct)
            out.append(ct)
        return out


def encrypted_linear_head(head: EncryptedLinearHead, queries: Sequence[bytes], rerandomizer: Rerandomizer, *,
                          max_ciphertext_bytes: int, query_scale_bits: int) -> list[list[bytes]]:
    """Validate and evaluate serialized query ciphertexts; return serialized replies per query."""
    he = head.he
    replies = []
    for blob in queries:
        ct = he.ciphertext_from_bytes(blob, level=he.input_level, max_bytes=max_ciphertext_bytes)
        if abs(ct.scale - 2.0**query_scale_bits) > 1e-6 * ct.scale:
            from shared_protocol.ckks import CiphertextError

            raise CiphertextError(f"query ciphertext scale is 2^{np.log2(ct.scale):.2f}, header says 2^{query_scale_bits}")
        replies.append([save_to_bytes(r) for r in head.evaluate(ct, rerandomizer)])
    return replies


def y_prescale_for(y: np.ndarray, num_samples: int, data_scale_bits: int) -> float:
    """Power of two to divide Y by so that |sum_s x_s y_s| * output scale stays below ~2^58
    (the client sends |x| <= 1). A power of two keeps the division exact."""
    max_y = float(np.max(np.abs(y))) if y.size else 0.0
    bound = num_samples * max(max_y, 1e-12)
    room = 2.0 ** (57 - data_scale_bits)
    return float(2.0 ** max(0, int(np.ceil(np.log2(bound / room))))) if bound > room else 1.0


def encrypted_cross_covariance(
    he: HEContext,
    layout: CrossCovarianceLayout,
    load_ciphertext: Callable[[int], seal.Ciphertext],
    y: np.ndarray,
    columns: range,
    rerandomizer: Rerandomizer,
    *,
    y_prescale: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[bytes | None], float]:
    """Enc(X^T Y)[:, columns] = sum over data ciphertexts of Enc(x-block) * plaintext(Y rows).

    The products are accumulated directly on the ciphertexts' NTT residues: each column plaintext is
    a polynomial in X^B, given by its m distinct NTT values (an m x m Vandermonde product), so no
    full NTT and no SEAL plaintext object is built per (ciphertext, column). The sums are then
    wrapped back into SEAL ciphertexts, rescaled, masked and re-randomised like any reply.
    Returns (blobs, value scale); a column whose plaintexts are all zero yields None (SEAL refuses
    the transparent result, and the client learns that the column is zero from the result anyway)."""
    level = he.input_level
    y_scale = float(2**WEIGHT_SCALE_BITS)
    y_cols = np.asarray(y, dtype=np.float64)[:, columns.start : columns.stop] / y_prescale
    rows = len(columns)
    classes = {q: he.ntt(q).block_classes(layout.block) for q in level.primes}
    accs = {q: ColumnAccumulator(2, rows, he.n, q, classes[q][0]) for q in level.primes}
    nonzero = np.zeros(rows, dtype=bool)
    template: seal.Ciphertext | None = None
    for c in range(layout.num_ciphertexts):
        ct = load_ciphertext(c)
        data = he.ciphertext_data(ct)  # (2, primes, N)
        sample_rows = layout.sample_range(c)
        vals = layout.column_values(y_cols[sample_rows.start : sample_rows.stop], y_scale)  # (rows, m)
        nonzero |= np.any(vals != 0, axis=1)
        for r, q in enumerate(level.primes):
            e = vandermonde(to_residues(vals, q), classes[q][1], q)
            accs[q].add(data[:, r, :], e)
        if template is None:
            template = _product_template(he, ct, y_scale)
        if progress is not None:
            progress(c + 1)
    assert template is not None
    sums = {q: accs[q].result() for q in level.primes}  # (2, rows, N) per prime
    masker = MaskedReply(he)
    positions = np.arange(layout.feature_dim, dtype=np.int64)
    zeros = np.zeros(layout.feature_dim)
    ev = he.evaluator
    blobs: list[bytes | None] = []
    scale = 0.0
    for j in range(rows):
        if not nonzero[j]:
            blobs.append(None)
            continue
        data = np.stack([sums[q][:, j, :] for q in level.primes], axis=1)  # (2, primes, N)
        ct = he.ciphertext_with_data(template, data)
        ev.rescale_to_next_inplace(ct)
        scale = ct.scale
        ev.add_plain_inplace(ct, masker.plaintext(positions, zeros, ct.scale))
        rerandomizer.apply(ct)
        blobs.append(save_to_bytes(ct))
    return blobs, scale


def _product_template(he: HEContext, ct: seal.Ciphertext, y_scale: float) -> seal.Ciphertext:
    """A real SEAL product (data ciphertext x a constant plaintext at the Y scale): its metadata
    (level, size, scale) is exactly what the accumulated sums need."""
    coeffs = np.zeros(he.n, dtype=np.int64)
    coeffs[0] = 1
    out = seal.Ciphertext()
    he.evaluator.multiply_plain(ct, he.plaintext_from_coeffs(coeffs, he.input_level, y_scale), out)
    return out
