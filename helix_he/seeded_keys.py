"""Key material whose uniform half is the provider's: expansion of a challenge seed, and the check.

Why: the provider re-randomises every reply by adding (p0*u + e0, p1*u + e1), u its fresh ternary
secret, (p0, p1) the client's public key. That hides the reply's c1 only if p1 is uniform: with
p1 = 0 or a constant, c1 stays (client's seed polynomial) x (provider's weights) plus small noise,
and the client divides the weights out. The provider cannot tell a uniform p1 from a crafted one,
so it does not let the client choose it: it issues a random seed (a challenge), both parties expand
the uniform half of every key ciphertext from it (the public key's p1 and each Galois key
component's second polynomial), and the provider refuses a key whose uniform half differs.

Each key ciphertext has its own expansion (domain separation by a label: the public key, or the
Galois element and decomposition component), at the key level: every data prime and the special
prime. This module holds the expansion and a view of SEAL's key serialization in which those
polynomials can be read and rewritten; `helix_he.keys` builds and checks keys with it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

import numpy as np
import tenseal.sealapi as seal
import zstandard

from .context import CiphertextError, HEContext, check_seal_header, save_to_bytes
from .rlwe import SEED_BYTES, expand_uniform

#: Bytes of a challenge seed (AES-256 key size: the expansion is AES-256-CTR keyed with a derived seed).
CHALLENGE_SEED_BYTES = SEED_BYTES
#: The slot of the public key's one ciphertext; Galois key components are (element, component).
PUBLIC_KEY_SLOT = (0, 0)

Slot = tuple[int, int]

_SEAL_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compression, reserved, total size
_SEAL_MAGIC, _COMPR_NONE, _COMPR_ZSTD = 0xA15E, 0, 2
_LABEL = b"helix-key-uniform-half/v1/"


class KeySeedError(CiphertextError):
    """A key's uniform half is not the expansion of the challenge seed it was registered with."""


def key_primes(he: HEContext) -> tuple[int, ...]:
    """The primes of the key level: every data prime, then the special prime."""
    return tuple(m.value() for m in he.context.key_context_data().parms().coeff_modulus())


def slot_name(slot: Slot) -> str:
    return "of the public key" if slot == PUBLIC_KEY_SLOT else f"of Galois element {slot[0]}, component {slot[1]}"


def uniform_half(he: HEContext, seed: bytes, slot: Slot) -> np.ndarray:
    """The uniform polynomial of one key ciphertext, (key primes, N) NTT values, from the challenge seed.

    The per-slot seed is HMAC-SHA256(seed, label): independent AES keys for the public key and for
    every Galois element and component, so no two key ciphertexts share a uniform half."""
    if len(seed) != CHALLENGE_SEED_BYTES:
        raise KeySeedError(f"a challenge seed has {CHALLENGE_SEED_BYTES} bytes, got {len(seed)}")
    label = b"public-key" if slot == PUBLIC_KEY_SLOT else b"galois/%d/%d" % slot
    derived = hmac.new(seed, _LABEL + label, hashlib.sha256).digest()
    return expand_uniform(derived, key_primes(he), he.n)


@dataclass
class KeyBlob:
    """An uncompressed SEAL key serialization (PublicKey or GaloisKeys) with the byte range of every
    key ciphertext's polynomial data, so the data can be read and rewritten in place.

    A public key is one ciphertext (slot PUBLIC_KEY_SLOT); Galois keys are, per element, one
    ciphertext per decomposition component (one per data prime). Each is a size-2 NTT-form
    ciphertext at the key level whose data array ends its own (uncompressed) serialization."""

    he: HEContext
    header: bytes  # the original SEAL header (its version bytes are reused)
    body: bytearray
    slots: dict[Slot, slice]

    @classmethod
    def of_public_key(cls, he: HEContext, pk: seal.PublicKey) -> KeyBlob:
        header, body = _uncompressed(save_to_bytes(pk), _ciphertext_bytes(he) + 4096)
        return cls(he, header, body, {PUBLIC_KEY_SLOT: _data_range(he, 0, len(body))})

    @classmethod
    def of_galois_keys(cls, he: HEContext, keys: seal.GaloisKeys) -> KeyBlob:
        """Walks SEAL's KSwitchKeys layout: parms_id, u64 count, then per Galois index a u64 count
        and that many PublicKey serializations (index i is element 2i + 1)."""
        components = len(key_primes(he)) - 1
        limit = 8 * he.n + 4096 + keys.size() * components * (_ciphertext_bytes(he) + 4096)
        header, body = _uncompressed(save_to_bytes(keys), limit)
        (outer,) = struct.unpack_from("<Q", body, 32)
        pos, slots = 40, {}
        for index in range(outer):
            (count,) = struct.unpack_from("<Q", body, pos)
            pos += 8
            if count and count != components:
                raise CiphertextError(f"Galois element {2 * index + 1} has {count} components, expected {components}")
            for component in range(count):
                _magic, _hsize, _major, _minor, compr, _res, total = _SEAL_HEADER.unpack_from(body, pos)
                if compr != _COMPR_NONE:
                    raise CiphertextError("a Galois key component is compressed inside its key set")
                slots[(2 * index + 1, component)] = _data_range(he, pos, pos + total)
                pos += total
        if pos != len(body):
            raise CiphertextError(f"Galois keys: {len(body) - pos} bytes after the last key")
        return cls(he, header, body, slots)

    def data(self, slot: Slot) -> np.ndarray:
        """(2, key primes, N): the key ciphertext's two polynomials, NTT values."""
        raw = np.frombuffer(self.body[self.slots[slot]], dtype="<u8")
        return raw.reshape(2, -1, self.he.n).astype(np.uint64)

    def write(self, slot: Slot, data: np.ndarray) -> None:
        target = self.slots[slot]
        raw = np.ascontiguousarray(data, dtype="<u8").tobytes()
        if len(raw) != target.stop - target.start:
            raise ValueError(f"key data of {len(raw)} bytes for a slot of {target.stop - target.start}")
        self.body[target] = raw

    def to_bytes(self) -> bytes:
        """The (uncompressed) serialization; SEAL validates it when it is loaded."""
        magic, hsize, major, minor, _compr, res, _total = _SEAL_HEADER.unpack(self.header)
        head = _SEAL_HEADER.pack(magic, hsize, major, minor, _COMPR_NONE, res, _SEAL_HEADER.size + len(self.body))
        return head + bytes(self.body)

    def check_uniform_halves(self, seed: bytes, what: str) -> None:
        """Every key ciphertext's second polynomial must be the expansion of `seed` for its slot."""
        for slot in self.slots:
            if not np.array_equal(self.data(slot)[1], uniform_half(self.he, seed, slot)):
                raise KeySeedError(
                    f"{what}: the uniform half {slot_name(slot)} is not the expansion of the challenge seed"
                )


def _ciphertext_bytes(he: HEContext) -> int:
    """Bytes of one key ciphertext's data: 2 polynomials at every key prime."""
    return 2 * len(key_primes(he)) * he.n * 8


def _uncompressed(raw: bytes, limit: int) -> tuple[bytes, bytearray]:
    compr = check_seal_header(raw, 1 << 31)
    body = raw[_SEAL_HEADER.size :]
    if compr == _COMPR_ZSTD:
        body = zstandard.ZstdDecompressor().decompress(body, max_output_size=limit)
    return raw[: _SEAL_HEADER.size], bytearray(body)


def _data_range(he: HEContext, start: int, end: int) -> slice:
    """The data array that ends a key ciphertext's serialization."""
    size = _ciphertext_bytes(he)
    if end - start < size + _SEAL_HEADER.size:
        raise CiphertextError("a key ciphertext is shorter than its data")
    return slice(end - size, end)


__all__ = [
    "CHALLENGE_SEED_BYTES",
    "PUBLIC_KEY_SLOT",
    "KeyBlob",
    "KeySeedError",
    "key_primes",
    "uniform_half",
]
