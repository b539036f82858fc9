"""Keys: the client's key pair (generation, storage, seeded encryption, exact decryption) and what the
provider builds from the public half it receives (validated key objects and the re-randomiser).

The secret key is created here, stored with owner-only permissions and never serialized onto the
wire: only `public_key_bytes` and `galois_key_bytes` leave the client. Encryption is symmetric and
seeded (the client owns the secret key): half the upload of public-key encryption. Which values are
encrypted in which packing is the business of the circuit modules.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal

from .context import CiphertextError, HEContext, check_seal_header, he_context, load_from_bytes, save_to_bytes
from .modmath import FixedMultiplier, addmod, centered, dot_rows, submod, to_residues
from .packing import trace_galois_elements
from .rlwe import ReplyCiphertext, SeededCiphertext, centered_binomial, expand_uniform, new_seed, ternary
from .seeded_keys import KeyBlob, KeySeedError, key_primes, uniform_half

#: A public key at N=16384 is ~1.6 MB unseeded; 4 MiB is the provider's hard limit.
MAX_PUBLIC_KEY_BYTES = 4 * 1024 * 1024
#: Seven Galois keys in full form (their uniform halves come from the provider's seed, not SEAL's PRNG) take
#: ~9.8 MB at N=8192 and ~19.6 MB at N=16384.
MAX_GALOIS_KEY_BYTES = 24 * 1024 * 1024


class ClientKeys:
    """A CKKS key pair for one pinned parameter set: the client's whole secret."""

    def __init__(self, he: HEContext, secret_key: seal.SecretKey) -> None:
        self.he = he
        self.secret_key = secret_key
        self._encryptor = seal.Encryptor(he.context, secret_key)
        self._decryptor = seal.Decryptor(he.context, secret_key)
        # The secret's NTT values per prime (key level: data primes first, in order, then the special one).
        residues = he.plaintext_residues(secret_key.data())
        self._s = {q: FixedMultiplier(residues[i], q) for i, q in enumerate(key_primes(he))}
        self._row_cache: dict[tuple[int, bytes], np.ndarray] = {}

    @classmethod
    def generate(cls, parameter_set: str) -> ClientKeys:
        he = he_context(parameter_set)
        return cls(he, seal.KeyGenerator(he.context).secret_key())

    def public_key_bytes(self, seed: bytes | None = None) -> bytes:
        """The public key: what the provider stores to bind a key id to a parameter set and to
        re-randomise replies with. A provider takes it only with its uniform half expanded from the
        challenge `seed` it issued (`public_key`). (The binding cannot return SEAL's seeded
        Serializable for keys, so this is the full form.)"""
        return save_to_bytes(self.public_key(seed))

    def public_key(self, seed: bytes | None = None) -> seal.PublicKey:
        """A fresh public key (p0, p1) = (-a*s + e, a). With a challenge `seed`, a is its expansion
        (`seeded_keys.uniform_half`) at every key prime, which is what a provider accepts; without
        one, SEAL's own random a (in-process use: tests and benchmarks)."""
        pk = seal.PublicKey()
        seal.KeyGenerator(self.he.context, self.secret_key).create_public_key(pk)
        if seed is None:
            return pk
        blob = KeyBlob.of_public_key(self.he, pk)
        self._reseat(blob, seed)
        out = seal.PublicKey()
        load_from_bytes(out, self.he.context, blob.to_bytes())
        return out

    def galois_key_bytes(self, stride_bits: int, seed: bytes | None = None) -> bytes:
        """Galois keys for the alignment packing tree (`CrossCovarianceLayout`): one per tree level,
        elements 1 + N / 2^i; evaluation keys only, they let the provider apply those automorphisms
        and nothing else. With a challenge `seed`, every component's uniform half is its expansion
        (what a provider accepts; full form, SEAL's seeded form cannot carry a foreign seed); without
        one, SEAL's seeded serialization (half the bytes; in-process use)."""
        elements = trace_galois_elements(self.he.n, stride_bits)
        if not elements:
            return b""
        keygen = seal.KeyGenerator(self.he.context, self.secret_key)
        if seed is None:
            return save_to_bytes(keygen.create_galois_keys(elements))
        keys = seal.GaloisKeys()
        keygen.create_galois_keys(elements, keys)
        blob = KeyBlob.of_galois_keys(self.he, keys)
        self._reseat(blob, seed)
        out = seal.GaloisKeys()
        load_from_bytes(out, self.he.context, blob.to_bytes())
        return save_to_bytes(out)

    def _reseat(self, blob: KeyBlob, seed: bytes) -> None:
        """Move every key ciphertext of `blob` onto the uniform half the seed names. SEAL made each
        as (b, a') with b + a'*s = e (+ P*sigma(s) at one prime for a Galois component); with
        b' = b + (a' - a)*s the pair (b', a) satisfies the same equation, so the key stays what
        SEAL made, with SEAL's own noise e, under the provider's a."""
        for slot in blob.slots:
            data = blob.data(slot)
            a = uniform_half(self.he, seed, slot)
            for i, q in enumerate(key_primes(self.he)):
                data[0, i] = addmod(data[0, i], self._s[q](submod(data[1, i], a[i], q)), q)
            data[1] = a
            blob.write(slot, data)

    def save(self, path: Path) -> None:
        """Write the secret key with 0600 permissions, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(save_to_bytes(self.secret_key))
        os.replace(tmp, path)

    @classmethod
    def load(cls, parameter_set: str, path: Path) -> ClientKeys:
        he = he_context(parameter_set)
        sk = seal.SecretKey()
        load_from_bytes(sk, he.context, path.read_bytes())
        return cls(he, sk)

    # --- encryption ------------------------------------------------------------------------------
    def encrypt_seeded(self, coeffs: np.ndarray, scale: float) -> list[SeededCiphertext]:
        """Symmetric encryption of integer polynomials (m, N) at the last level (depth-1 circuits
        without a rescale need no more): c1 = expand(seed), c0 = NTT(m + e) - c1 * s, so that
        c0 + c1 * s = m + e."""
        he = self.he
        lvl = he.output_level
        coeffs = np.atleast_2d(np.asarray(coeffs, dtype=np.int64))
        noisy = coeffs + centered_binomial(coeffs.size).reshape(coeffs.shape)
        seeds = [new_seed() for _ in range(coeffs.shape[0])]
        a = np.stack([expand_uniform(seed, lvl.primes, he.n) for seed in seeds])  # (rows, primes, N)
        c0 = np.empty((coeffs.shape[0], len(lvl.primes), he.n), dtype=np.uint64)
        for i, q in enumerate(lvl.primes):
            c0[:, i] = submod(he.ntt(q).forward(to_residues(noisy, q)), self._s[q](a[:, i]), q)
        return [SeededCiphertext(lvl.index, scale, seed, c0[r]) for r, seed in enumerate(seeds)]

    def encrypt_seal(self, coeffs: np.ndarray, scale: float) -> list[bytes]:
        """SEAL's own seeded symmetric encryption of integer polynomials (m, N) at the last level,
        serialized (the alignment upload, which the provider validates with SEAL)."""
        he = self.he
        ntt = he.coeffs_to_ntt(np.atleast_2d(coeffs), he.output_level)
        return [
            save_to_bytes(self._encryptor.encrypt_symmetric(he.plaintext_from_ntt(row, he.output_level, scale)))
            for row in ntt
        ]

    # --- decryption ------------------------------------------------------------------------------
    def decrypt_seal(self, blob: bytes, max_bytes: int) -> np.ndarray:
        """Every coefficient of a SEAL-serialized last-level ciphertext, divided by its scale."""
        he = self.he
        ct = he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=max_bytes)
        pt = seal.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return he.decode_last_level(pt)

    def secret_times(self, values: np.ndarray, q: int) -> np.ndarray:
        """s * values modulo q, pointwise in the NTT domain (the c1 * s of decryption)."""
        return self._s[q](values)

    def reply_residues(self, blob: bytes, positions: np.ndarray) -> tuple[np.ndarray, int, float]:
        """Exact decryption of a compact reply: the message residues at `positions` (the only
        coefficients a reply carries), the modulus they are residues of (the prime, or 2^bits for a
        switched reply), and the scale."""
        he = self.he
        lvl = he.output_level
        q = lvl.primes[0]
        bits = he.params.reply_modulus_bits or 0
        positions = np.asarray(positions, dtype=np.int64)
        reply = ReplyCiphertext.from_bytes(blob, level=lvl.index, q=q, n=he.n, count=len(positions), modulus_bits=bits)
        if bits:
            c1s = self._switched_c1_times_s(reply.c1, bits)
            c1s = centered(dot_rows(c1s, self._rows(q, positions), q), q)
            return _mod_power_of_two(lifted(reply.c0, bits) + c1s, bits), 1 << bits, reply.scale
        c1s = dot_rows(self._s[q](reply.c1), self._rows(q, positions), q)
        return addmod(reply.c0, c1s, q), q, reply.scale

    def _switched_c1_times_s(self, c1: np.ndarray, bits: int) -> np.ndarray:
        """NTT values of c1 * s over the integers, modulo the prime: c1 (coefficients below 2^bits,
        lifted to (-2^(bits-1), 2^(bits-1)]) times the ternary s has coefficients below N * 2^(bits-1),
        far below q/2, so reading them centered mod q gives the exact integer product."""
        q = self.he.output_level.primes[0]
        if self.he.n << (bits - 1) >= q // 2:
            raise ValueError(f"a reply modulus of 2^{bits} is too wide for exact decryption under q")
        return self._s[q](self.he.ntt(q).forward(to_residues(lifted(c1, bits), q)))

    def _rows(self, q: int, positions: np.ndarray) -> np.ndarray:
        """The NTT rows that read coefficients `positions` (cached: one key serves concurrent requests, so
        the lookup never reads the cache twice)."""
        key = (q, positions.tobytes())
        rows = self._row_cache.get(key)
        if rows is None:
            rows = self.he.ntt(q).coefficient_rows(positions)
            if len(self._row_cache) > 64:
                self._row_cache.clear()
            self._row_cache[key] = rows
        return rows

    def decrypt_reply(self, blob: bytes, positions: np.ndarray) -> np.ndarray:
        """The values a compact reply carries at `positions`."""
        res, modulus, scale = self.reply_residues(blob, positions)
        return centered(res, modulus).astype(np.float64) / scale

    def decrypt_prefix(self, blob: bytes, count: int) -> np.ndarray:
        """The values a compact reply carries at coefficients [0, count) (the batch form)."""
        he = self.he
        lvl = he.output_level
        q = lvl.primes[0]
        bits = he.params.reply_modulus_bits or 0
        reply = ReplyCiphertext.from_bytes(blob, level=lvl.index, q=q, n=he.n, count=count, modulus_bits=bits)
        if bits:
            c1s = centered(he.ntt(q).inverse(self._switched_c1_times_s(reply.c1, bits))[:count], q)
            res = _mod_power_of_two(lifted(reply.c0, bits) + c1s, bits)
            return centered(res, 1 << bits).astype(np.float64) / reply.scale
        c1s = he.ntt(q).inverse(self._s[q](reply.c1))[:count]
        return centered(addmod(reply.c0, c1s, q), q).astype(np.float64) / reply.scale


def lifted(values: np.ndarray, bits: int) -> np.ndarray:
    """Values mod 2^bits as signed integers in [-2^(bits-1), 2^(bits-1))."""
    v = np.asarray(values, dtype=np.uint64).astype(np.int64)
    out: np.ndarray = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    return out


def _mod_power_of_two(values: np.ndarray, bits: int) -> np.ndarray:
    out: np.ndarray = np.asarray(values, dtype=np.int64).astype(np.uint64) & np.uint64((1 << bits) - 1)
    return out


# --- the provider's side of the keys -------------------------------------------------------------
def _load_checked(obj: object, what: str, parameter_set: str, blob: bytes, max_bytes: int) -> None:
    """Header and size first, then SEAL's own validation against our pinned context (never
    `unsafe_load`); a failure is a CiphertextError naming the key kind and the parameter set."""
    check_seal_header(blob, max_bytes)
    try:
        load_from_bytes(obj, he_context(parameter_set).context, blob)
    except (RuntimeError, ValueError) as exc:
        raise CiphertextError(f"{what}: not valid for {parameter_set}: {exc}") from None


def load_public_key(parameter_set: str, blob: bytes, seed: bytes) -> seal.PublicKey:
    """An untrusted public key, validated against the pinned parameter set, whose uniform half must
    be the expansion of the challenge `seed` the provider issued (KeySeedError otherwise)."""
    pk = seal.PublicKey()
    _load_checked(pk, "public key", parameter_set, blob, MAX_PUBLIC_KEY_BYTES)
    KeyBlob.of_public_key(he_context(parameter_set), pk).check_uniform_halves(seed, "public key")
    return pk


def load_galois_keys(parameter_set: str, blob: bytes, elements: list[int], seed: bytes) -> seal.GaloisKeys:
    """Untrusted Galois keys, validated: the key set must be exactly those automorphisms, no more
    (each key is ~1.5-3 MB of memory), and every component's uniform half the expansion of the
    challenge `seed` (KeySeedError otherwise)."""
    keys = seal.GaloisKeys()
    _load_checked(keys, "Galois keys", parameter_set, blob, MAX_GALOIS_KEY_BYTES)
    if keys.size() != len(elements) or not all(keys.has_key(e) for e in elements):
        raise CiphertextError(f"the Galois keys do not match the announced elements {elements}")
    KeyBlob.of_galois_keys(he_context(parameter_set), keys).check_uniform_halves(seed, "Galois keys")
    return keys


@dataclass(frozen=True)
class ZeroEncryption:
    """One fresh encryption of zero under the client's public key, (p0*u + e0, p1*u + e1), in the form a
    compact reply adds it: p0*u as NTT values and e0 as residues of its coefficients, kept apart because
    a reply reads c0 at its output coefficients only (one row product on the sum, not a transform);
    c1 = p1*u + e1 as NTT values, or as coefficients under a set whose replies are switched down (the
    switch needs coefficients)."""

    p0u: np.ndarray
    e0: np.ndarray
    c1: np.ndarray


class Rerandomizer:
    """Adds a fresh public-key encryption of zero to a reply (zero message, fresh randomness).

    Without this a reply's second component would be the (rescaled) product of the client's own
    seeded polynomial with the provider's plaintext, which the client knows half of.

    Two forms: `apply` for SEAL ciphertexts (the alignment result), and `fresh_zeros` for the compact
    inference replies, computed on residues: Enc_pk(0) = (p0*u + e0, p1*u + e1) modulo the last
    prime, u ternary, e0/e1 centered binomial, (p0, p1) the client's public key. It decrypts to
    -e*u + e0 + e1*s, small noise, and makes c1 uniform to the client (an RLWE sample with secret u).

    Why a reserve: an encryption of zero depends on nothing in the query, so it can be made before the
    query arrives. `refill` (called off the request path, e.g. by an idle worker thread) prepares up to
    `reserve` of them; `fresh_zeros` takes prepared ones first, each exactly once, and makes the rest on
    the spot. The distribution is the same either way; only when the work is done differs."""

    def __init__(self, he: HEContext, public_key: seal.PublicKey, *, reserve: int = 0) -> None:
        self.he = he
        self._encryptor = seal.Encryptor(he.context, public_key)
        key = he.ciphertext_data(public_key.data())  # (2, key-level primes, N); q0 is row 0
        self.q = he.output_level.primes[0]
        self._p0, self._p1 = FixedMultiplier(key[0, 0], self.q), FixedMultiplier(key[1, 0], self.q)
        self.reserve = reserve
        self._ready: collections.deque[ZeroEncryption] = collections.deque()

    def apply(self, ct: seal.Ciphertext) -> None:
        zero = seal.Ciphertext()
        self._encryptor.encrypt_zero(list(ct.parms_id()), zero)
        zero.scale = ct.scale  # the message is 0 at any scale; SEAL requires equal scales to add
        self.he.evaluator.add_inplace(ct, zero)

    @property
    def prepared(self) -> int:
        """How many encryptions of zero are ready."""
        return len(self._ready)

    def refill(self, batch: int = 8, limit: int | None = None) -> int:
        """Prepare encryptions of zero until the reserve is full (or `limit` are made); returns how many
        were made."""
        made = 0
        while len(self._ready) < self.reserve and (limit is None or made < limit):
            want = (
                self.reserve - len(self._ready) if limit is None else min(limit - made, self.reserve - len(self._ready))
            )
            fresh = self._make(min(batch, want))
            self._ready.extend(fresh)
            made += len(fresh)
        return made

    def fresh_zeros(self, copies: int) -> list[ZeroEncryption]:
        """`copies` encryptions of zero, none ever handed out before."""
        out: list[ZeroEncryption] = []
        while len(out) < copies:
            try:
                out.append(self._ready.popleft())  # atomic: concurrent takers never share one
            except IndexError:
                out.extend(self._make(copies - len(out)))
        return out

    def _make(self, copies: int) -> list[ZeroEncryption]:
        """`copies` independent encryptions of zero at once (one transform call for all of them)."""
        q, n = self.q, self.he.n
        ntt = self.he.ntt(q)
        small = np.concatenate(
            [ternary(n * copies).reshape(copies, n), centered_binomial(n * copies).reshape(copies, n)]
        )
        transformed = ntt.forward(to_residues(small, q))
        u, e1 = transformed[:copies], transformed[copies:]
        e0 = to_residues(centered_binomial(n * copies).reshape(copies, n), q)
        p0u = self._p0(u)
        c1 = addmod(self._p1(u), e1, q)
        if self.he.params.reply_modulus_bits:
            c1 = ntt.inverse(c1)
        return [ZeroEncryption(p0u[i], e0[i], c1[i]) for i in range(copies)]


__all__ = [
    "MAX_GALOIS_KEY_BYTES",
    "MAX_PUBLIC_KEY_BYTES",
    "ClientKeys",
    "KeySeedError",
    "Rerandomizer",
    "SeededCiphertext",
    "ZeroEncryption",
    "load_galois_keys",
    "load_public_key",
]
