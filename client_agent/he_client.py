"""The client's whole crypto API: key generation, encryption and decryption. The secret key is
created here, stored with owner-only permissions and never serialized onto the wire.

Encryption is symmetric and seeded (the client owns the secret key): half the upload of public-key
encryption. Queries use the compact RLWE form of `shared_protocol.rlwe` (encrypted here on residues
with the SEAL secret key's NTT values); alignment data uses SEAL's own seeded serialization.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal

from shared_protocol.ckks import HEContext, load_from_bytes, he_context, save_to_bytes
from shared_protocol.messages import AlignmentResultHeader, ClassifyBatchReplyHeader, ClassifyReplyHeader
from shared_protocol.modmath import FixedMultiplier, addmod, centered, dot_rows, submod, to_residues
from shared_protocol.packing import CrossCovarianceLayout, LinearHeadLayout, trace_galois_elements
from shared_protocol.rlwe import ReplyCiphertext, SeededCiphertext, centered_binomial, expand_uniform, new_seed

QUERY_SCALE_BITS = 26  # queries are encrypted at the last level; see provider_server.he_circuits


class ClientKeys:
    """A CKKS key pair for one pinned parameter set."""

    def __init__(self, he: HEContext, secret_key: seal.SecretKey) -> None:
        self.he = he
        self.secret_key = secret_key
        self._encryptor = seal.Encryptor(he.context, secret_key)
        self._decryptor = seal.Decryptor(he.context, secret_key)
        # The secret's NTT values per prime (key level: data primes first, in order, then the special one).
        key_primes = [m.value() for m in he.context.key_context_data().parms().coeff_modulus()]
        residues = he.plaintext_residues(secret_key.data())
        self._s = {q: FixedMultiplier(residues[i], q) for i, q in enumerate(key_primes)}
        self._row_cache: dict[tuple[int, bytes], np.ndarray] = {}

    @classmethod
    def generate(cls, parameter_set: str) -> "ClientKeys":
        he = he_context(parameter_set)
        return cls(he, seal.KeyGenerator(he.context).secret_key())

    def public_key_bytes(self) -> bytes:
        """The public key: what the provider stores to bind a key id to a parameter set. (The
        binding cannot return SEAL's seeded Serializable for keys, so this is the full form.)"""
        pk = seal.PublicKey()
        seal.KeyGenerator(self.he.context, self.secret_key).create_public_key(pk)
        return save_to_bytes(pk)

    def save(self, path: Path) -> None:
        """Write the secret key with 0600 permissions, atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(save_to_bytes(self.secret_key))
        os.replace(tmp, path)

    @classmethod
    def load(cls, parameter_set: str, path: Path) -> "ClientKeys":
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

    def encrypt_queries(self, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
        """One coefficient-packed ciphertext per query row, in compact seeded form."""
        scale = float(2**QUERY_SCALE_BITS)
        primes = self.he.output_level.primes
        return [ct.to_bytes(primes) for ct in self.encrypt_seeded(layout.query_coefficients(x, scale), scale)]

    def encrypt_batch(self, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
        """Feature-major batch: up to N queries as `layout.d` ciphertexts (one per dimension)."""
        scale = float(2**QUERY_SCALE_BITS)
        primes = self.he.output_level.primes
        return [ct.to_bytes(primes) for ct in self.encrypt_seeded(layout.batch_coefficients(x, scale), scale)]

    def galois_key_bytes(self, stride_bits: int) -> bytes:
        """Galois keys for the alignment packing tree (`CrossCovarianceLayout`): one per tree level,
        elements 1 + N / 2^i. Seeded serialization (half the bytes); evaluation keys only, they let the
        provider apply those automorphisms and nothing else."""
        elements = trace_galois_elements(self.he.n, stride_bits)
        if not elements:
            return b""
        return save_to_bytes(seal.KeyGenerator(self.he.context, self.secret_key).create_galois_keys(elements))

    def encrypt_alignment_data(self, x: np.ndarray, layout: CrossCovarianceLayout, start: int, count: int) -> list[bytes]:
        """Ciphertexts [start, start+count) of the stride packing, at the last level (the circuit
        needs no rescale), seeded, at scale 2^layout.data_scale_bits; x must satisfy |x| <= 1."""
        he = self.he
        scale = float(2**layout.data_scale_bits)
        coeffs = []
        for c in range(start, start + count):
            rows = layout.sample_range(c)
            coeffs.append(layout.data_coefficients(x[rows.start : rows.stop], scale))
        ntt = he.coeffs_to_ntt(np.stack(coeffs), he.output_level)
        return [save_to_bytes(self._encryptor.encrypt_symmetric(he.plaintext_from_ntt(row, he.output_level, scale)))
                for row in ntt]

    # --- decryption ------------------------------------------------------------------------------
    def _decrypt_coeffs(self, blob: bytes, max_bytes: int) -> np.ndarray:
        he = self.he
        ct = he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=max_bytes)
        pt = seal.Plaintext()
        self._decryptor.decrypt(ct, pt)
        return he.decode_last_level(pt)

    def reply_residues(self, blob: bytes, positions: np.ndarray) -> tuple[np.ndarray, int, float]:
        """Exact decryption of a compact reply: the message residues at `positions` (the only
        coefficients a reply carries), the prime, and the scale."""
        he = self.he
        lvl = he.output_level
        q = lvl.primes[0]
        positions = np.asarray(positions, dtype=np.int64)
        reply = ReplyCiphertext.from_bytes(blob, level=lvl.index, q=q, n=he.n, count=len(positions))
        c1s = dot_rows(self._s[q](reply.c1), self._rows(q, positions), q)
        return addmod(reply.c0, c1s, q), q, reply.scale

    def _rows(self, q: int, positions: np.ndarray) -> np.ndarray:
        key = (q, positions.tobytes())
        if key not in self._row_cache:
            if len(self._row_cache) > 64:
                self._row_cache.clear()
            self._row_cache[key] = self.he.ntt(q).coefficient_rows(positions)
        return self._row_cache[key]

    def decrypt_reply(self, blob: bytes, positions: np.ndarray) -> np.ndarray:
        """The values a compact reply carries at `positions`."""
        res, q, scale = self.reply_residues(blob, positions)
        return centered(res, q).astype(np.float64) / scale

    def decrypt_batch_logits(self, header: ClassifyBatchReplyHeader, blobs: list[bytes], max_bytes: int = 1 << 22) -> np.ndarray:
        """(num_queries, num_classes) logits from one reply per class (coefficients [0, num_queries))."""
        if len(blobs) != header.num_classes:
            raise ValueError(f"batch reply has {len(blobs)} ciphertexts, expected {header.num_classes}")
        he = self.he
        lvl = he.output_level
        q = lvl.primes[0]
        m = header.num_queries
        out = np.empty((m, header.num_classes))
        for j, blob in enumerate(blobs):
            if len(blob) > max_bytes:
                raise ValueError(f"reply ciphertext of {len(blob)} bytes exceeds the limit of {max_bytes}")
            reply = ReplyCiphertext.from_bytes(blob, level=lvl.index, q=q, n=he.n, count=m)
            c1s = he.ntt(q).inverse(self._s[q](reply.c1))[:m]
            out[:, j] = centered(addmod(reply.c0, c1s, q), q).astype(np.float64) / reply.scale
        return out

    def decrypt_logits(self, header: ClassifyReplyHeader, blobs: list[bytes], max_bytes: int = 1 << 22) -> np.ndarray:
        per = header.ciphertexts_per_query
        if len(blobs) != header.num_queries * per:
            raise ValueError(f"reply has {len(blobs)} ciphertexts, expected {header.num_queries * per}")
        if len(header.class_groups) != per or len(header.output_positions) != per or any(
                len(c) != len(p) for c, p in zip(header.class_groups, header.output_positions)):
            raise ValueError("reply header's class groups and output positions do not match")
        logits = np.zeros((header.num_queries, header.num_classes))
        for qi in range(header.num_queries):
            for g in range(per):
                blob = blobs[qi * per + g]
                if len(blob) > max_bytes:
                    raise ValueError(f"reply ciphertext of {len(blob)} bytes exceeds the limit of {max_bytes}")
                logits[qi, header.class_groups[g]] = self.decrypt_reply(blob, np.asarray(header.output_positions[g]))
        return logits

    def decrypt_cross_covariance(self, header: AlignmentResultHeader, blobs: list[bytes], max_bytes: int = 1 << 22) -> np.ndarray:
        """-> (feature_dim, output_columns) = X^T Y (before the client undoes its own X scaling).
        Result ciphertext g carries columns [g*m, (g+1)*m) at coefficients a*m + j (m = 2^stride_bits)."""
        m = 1 << header.stride_bits
        if header.feature_dim * m > self.he.n:
            raise ValueError(f"result header's stride 2^{header.stride_bits} does not fit {header.feature_dim} features")
        groups = -(-header.output_columns // m)
        if len(blobs) != groups:
            raise ValueError(f"result has {len(blobs)} ciphertexts, expected {groups}")
        out = np.zeros((header.feature_dim, header.output_columns))
        rows = np.arange(header.feature_dim)[:, None] * m
        for g, blob in enumerate(blobs):
            width = min(m, header.output_columns - g * m)
            coeffs = self._decrypt_coeffs(blob, max_bytes)
            out[:, g * m : g * m + width] = coeffs[rows + np.arange(width)[None, :]]
        return out

    def decrypt_whole(self, blob: bytes, max_bytes: int = 1 << 22) -> np.ndarray:
        """Every coefficient of a SEAL-serialized reply, an alignment result (for audits and tests of
        reply hygiene). Inference replies carry only their outputs: see `decrypt_reply`."""
        return self._decrypt_coeffs(blob, max_bytes)
