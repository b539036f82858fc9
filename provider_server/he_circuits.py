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
