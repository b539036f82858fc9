"""Compact RLWE ciphertexts for private inference, and the randomness both parties draw.

Why not SEAL's serialization on the inference path: SEAL (de)serializes only through files and
expands seeded ciphertexts with a PRNG Python cannot reproduce, so the provider paid ~1.2 ms of file
round trips and parsing per query, more than the homomorphic work itself. These are the same CKKS
ciphertexts SEAL produces, over the same ring, primes and NTT (learned from SEAL by `HEContext`) and
under the same SEAL-generated keys; only their bytes differ:

* a query is ``(c0, seed)``: the uniform component ``c1`` is ``expand_uniform(seed)`` (AES-256-CTR keyed
  with the seed, rejection sampling), so a query costs one polynomial per prime on the wire;
* a reply is ``(c0 at the output coefficients, c1)`` at the last level: the client decrypts a
  coefficient ``i`` as ``c0[i] + (c1 * s)[i]``, so only the coefficients that carry outputs are sent,
  and the rest of the message does not exist on the wire at all;
* residues travel in ``ceil(bits / 8)`` bytes (5 for a 40-bit prime instead of SEAL's 8);
* under a parameter set with a reply modulus (`CKKSParameterSet.reply_modulus_bits`) the reply is
  switched down to 2^bits before it leaves and packed at exactly that many bits per coefficient.

Every parser validates sizes, the level, and that every residue is below its prime.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .bitpack import BitPackError, pack_bits, packed_size, unpack_bits
from .context import CiphertextError
from .modmath import U64

SEED_BYTES = 32
CBD_ETA = 21  # centered binomial with variance 21/2: sigma 3.24, SEAL's error width (3.2)
_QUERY_MAGIC = b"HLXQ"
_REPLY_MAGIC = b"HLXR"
_VERSION = 1
_HEADER = struct.Struct("<4sBBHdII")  # magic, version, level index, reserved, scale, N, count


class CompactCiphertextError(CiphertextError):
    """A compact ciphertext is malformed, truncated, oversized or for other parameters."""


def residue_bytes(q: int) -> int:
    """Bytes per residue on the wire for prime q."""
    return (q.bit_length() + 7) // 8


def pack_residues(values: np.ndarray, q: int) -> bytes:
    width = residue_bytes(q)
    raw = np.ascontiguousarray(values, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return raw[:, :width].tobytes()


def unpack_residues(data: bytes | memoryview, count: int, q: int, what: str) -> np.ndarray:
    width = residue_bytes(q)
    if len(data) != count * width:
        raise CompactCiphertextError(f"{what}: expected {count * width} bytes, got {len(data)}")
    raw = np.zeros((count, 8), dtype=np.uint8)
    raw[:, :width] = np.frombuffer(data, dtype=np.uint8).reshape(count, width)
    out = raw.view("<u8").reshape(count).astype(U64)
    if count and int(out.max()) >= q:
        raise CompactCiphertextError(f"{what}: a residue is not below its prime")
    return out


# --- randomness ---------------------------------------------------------------------------------
def new_seed() -> bytes:
    return os.urandom(SEED_BYTES)


def expand_uniform(seed: bytes, primes: tuple[int, ...], n: int) -> np.ndarray:
    """The uniform polynomial named by ``seed``: (len(primes), n) residues, read as NTT values.

    AES-256-CTR keyed with the seed (nonce: the prime index), 64-bit words masked to the prime's
    bit length and rejection-sampled, so every residue is exactly uniform in [0, q). A longer
    keystream extends the shorter one, so a rare shortfall just reads further."""
    if len(seed) != SEED_BYTES:
        raise CompactCiphertextError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    out = np.empty((len(primes), n), dtype=U64)
    for i, q in enumerate(primes):
        nonce = bytes([i]) + b"helix-a" + bytes(8)  # 16 bytes; the counter runs in the low 8
        mask = U64((1 << q.bit_length()) - 1)
        words = n + n // 16 + 64
        while True:
            draw = np.frombuffer(keystream(seed, nonce, 8 * words), dtype="<u8") & mask
            kept = draw[draw < U64(q)]
            if kept.size >= n:
                out[i] = kept[:n]
                break
            words *= 2
    return out


def keystream(key: bytes, nonce: bytes, count: int) -> bytes:
    """AES-256-CTR keystream: a standard PRG, and with AES-NI ~3x faster here than SHAKE-128
    (which matters: every reply needs ~130 KB of fresh randomness)."""
    return Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor().update(bytes(count))


def secret_bytes(count: int) -> bytes:
    """Secret randomness: AES-256-CTR keyed with 256 bits from os.urandom."""
    return keystream(os.urandom(SEED_BYTES), bytes(16), count)


def centered_binomial(n: int, eta: int = CBD_ETA) -> np.ndarray:
    """Error polynomial coefficients: popcount(a) - popcount(b) over eta random bits each, the RLWE
    error distribution of Kyber/NewHope with SEAL's width."""
    mask = np.uint64((1 << eta) - 1)
    raw = np.frombuffer(secret_bytes(8 * n), dtype="<u8")
    plus = np.bitwise_count(raw & mask).astype(np.int64)
    minus = np.bitwise_count((raw >> np.uint64(eta)) & mask).astype(np.int64)
    out: np.ndarray = plus - minus
    return out


def ternary(n: int) -> np.ndarray:
    """Uniform {-1, 0, 1} coefficients (rejection of 255 keeps them unbiased)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        raw = np.frombuffer(secret_bytes(n + n // 8 + 16), dtype=np.uint8)
        raw = raw[raw < 255]
        out = np.concatenate([out, (raw % 3).astype(np.int64) - 1])
    return out[:n]


# --- wire forms ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeededCiphertext:
    """A symmetric CKKS encryption (c0, c1 = expand_uniform(seed)), NTT form, at one level."""

    level: int  # index into HEContext.levels
    scale: float
    seed: bytes
    c0: np.ndarray  # (primes, N) NTT values

    def to_bytes(self, primes: tuple[int, ...]) -> bytes:
        n = self.c0.shape[1]
        head = _HEADER.pack(_QUERY_MAGIC, _VERSION, self.level, 0, self.scale, n, len(primes))
        return head + self.seed + b"".join(pack_residues(self.c0[i], q) for i, q in enumerate(primes))

    @staticmethod
    def wire_size(primes: tuple[int, ...], n: int) -> int:
        return _HEADER.size + SEED_BYTES + n * sum(residue_bytes(q) for q in primes)

    @classmethod
    def from_bytes(cls, data: bytes, *, level: int, primes: tuple[int, ...], n: int) -> SeededCiphertext:
        """Parse an untrusted query ciphertext expected at `level` (with those primes) in ring N."""
        expected = cls.wire_size(primes, n)
        if len(data) != expected:
            raise CompactCiphertextError(
                f"query ciphertext has {len(data)} bytes, expected {expected} (N={n}, {len(primes)} primes)"
            )
        magic, version, lvl, _res, scale, got_n, count = _HEADER.unpack_from(data)
        if magic != _QUERY_MAGIC or version != _VERSION:
            raise CompactCiphertextError("not a HELIX query ciphertext (bad magic or version)")
        if got_n != n or count != len(primes):
            raise CompactCiphertextError(
                f"ciphertext is for N={got_n} with {count} primes, expected N={n} with {len(primes)}"
            )
        if lvl != level:
            raise CompactCiphertextError(f"ciphertext is at modulus level {lvl}, expected {level}")
        if not (math.isfinite(scale) and scale > 1.0):
            raise CompactCiphertextError(f"ciphertext scale {scale!r} is not a positive finite number")
        pos = _HEADER.size
        seed = bytes(data[pos : pos + SEED_BYTES])
        pos += SEED_BYTES
        view = memoryview(data)
        c0 = np.empty((len(primes), n), dtype=U64)
        for i, q in enumerate(primes):
            size = n * residue_bytes(q)
            c0[i] = unpack_residues(view[pos : pos + size], n, q, f"c0 mod prime {i}")
            pos += size
        return cls(lvl, float(scale), seed, c0)


@dataclass(frozen=True)
class ReplyCiphertext:
    """A last-level reply: c1 whole and c0 only at the coefficients that carry outputs (coefficient
    form). The message at those coefficients is c0 + (c1 * s); nothing else is sent.

    Two forms: under the prime q (`modulus_bits` 0: c1 in NTT form, residues in whole bytes), or
    switched down to the modulus 2^modulus_bits (c1 in coefficient form, every value packed at exactly
    that many bits; `helix_he.modmath.switch_to_power_of_two`)."""

    scale: float
    c0: np.ndarray  # (count,) coefficient values at the layout's output positions
    c1: np.ndarray  # (N,) NTT values mod q, or coefficients mod 2^modulus_bits
    modulus_bits: int = 0

    def to_bytes(self, q: int, level: int) -> bytes:
        bits = self.modulus_bits
        head = _HEADER.pack(_REPLY_MAGIC, _VERSION, level, bits, self.scale, self.c1.shape[0], self.c0.shape[0])
        if bits:
            return head + pack_bits(self.c0, bits) + pack_bits(self.c1, bits)
        return head + pack_residues(self.c0, q) + pack_residues(self.c1, q)

    @staticmethod
    def wire_size(q: int, n: int, count: int, modulus_bits: int = 0) -> int:
        if modulus_bits:
            return _HEADER.size + packed_size(count, modulus_bits) + packed_size(n, modulus_bits)
        return _HEADER.size + (count + n) * residue_bytes(q)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, level: int, q: int, n: int, count: int, modulus_bits: int = 0
    ) -> ReplyCiphertext:
        expected = cls.wire_size(q, n, count, modulus_bits)
        if len(data) != expected:
            raise CompactCiphertextError(f"reply ciphertext has {len(data)} bytes, expected {expected}")
        magic, version, lvl, bits, scale, got_n, got_count = _HEADER.unpack_from(data)
        if magic != _REPLY_MAGIC or version != _VERSION:
            raise CompactCiphertextError("not a HELIX reply ciphertext (bad magic or version)")
        if got_n != n or got_count != count or lvl != level or bits != modulus_bits:
            raise CompactCiphertextError(
                f"reply is for N={got_n}, {got_count} outputs, level {lvl}, modulus bits {bits}; "
                f"expected N={n}, {count} outputs, level {level}, modulus bits {modulus_bits}"
            )
        if not (math.isfinite(scale) and scale > 0.0):
            raise CompactCiphertextError(f"reply scale {scale!r} is not a positive finite number")
        view = memoryview(data)
        pos = _HEADER.size
        if modulus_bits:
            size = packed_size(count, modulus_bits)
            try:
                c0 = unpack_bits(view[pos : pos + size], count, modulus_bits, "reply c0")
                c1 = unpack_bits(view[pos + size :], n, modulus_bits, "reply c1")
            except BitPackError as exc:
                raise CompactCiphertextError(str(exc)) from None
            return cls(float(scale), c0, c1, modulus_bits)
        c0 = unpack_residues(view[pos : pos + count * residue_bytes(q)], count, q, "reply c0")
        pos += count * residue_bytes(q)
        c1 = unpack_residues(view[pos:], n, q, "reply c1")
        return cls(float(scale), c0, c1)
