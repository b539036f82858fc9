"""The client's whole crypto API: key generation, encryption and decryption. The secret key is
created here, stored with owner-only permissions and never serialized onto the wire.

Encryption is symmetric and seeded (the client owns the secret key): half the upload of public-key
encryption, and the provider needs no public key to evaluate.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal

from shared_protocol.ckks import HEContext, load_from_bytes, he_context, save_to_bytes
from shared_protocol.messages import AlignmentResultHeader, ClassifyReplyHeader
from shared_protocol.packing import CrossCovarianceLayout, LinearHeadLayout, trace_galois_elements

QUERY_SCALE_BITS = 40


class ClientKeys:
    """A CKKS key pair for one pinned parameter set."""

    def __init__(self, he: HEContext, secret_key: seal.SecretKey) -> None:
        self.he = he
        self.secret_key = secret_key
        self._encryptor = seal.Encryptor(he.context, secret_key)
        self._decryptor = seal.Decryptor(he.context, secret_key)

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
    def _encrypt_coeffs(self, coeffs: np.ndarray, scale: float) -> list[bytes]:
        he = self.he
        ntt = he.coeffs_to_ntt(coeffs, he.input_level)
        out = []
        for row in ntt:
            pt = he.plaintext_from_ntt(row, he.input_level, scale)
            out.append(save_to_bytes(self._encryptor.encrypt_symmetric(pt)))
        return out

    def encrypt_queries(self, x: np.ndarray, layout: LinearHeadLayout) -> list[bytes]:
        """One coefficient-packed ciphertext per query row."""
        scale = float(2**QUERY_SCALE_BITS)
        return self._encrypt_coeffs(layout.query_coefficients(x, scale), scale)

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

    def decrypt_logits(self, header: ClassifyReplyHeader, blobs: list[bytes], max_bytes: int = 1 << 22) -> np.ndarray:
        per = header.ciphertexts_per_query
        if len(blobs) != header.num_queries * per:
            raise ValueError(f"reply has {len(blobs)} ciphertexts, expected {header.num_queries * per}")
        logits = np.zeros((header.num_queries, header.num_classes))
        for qi in range(header.num_queries):
            for g in range(per):
                coeffs = self._decrypt_coeffs(blobs[qi * per + g], max_bytes)
                logits[qi, header.class_groups[g]] = coeffs[header.output_positions[g]]
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
        """Every coefficient of a reply (for audits and tests of reply hygiene)."""
        return self._decrypt_coeffs(blob, max_bytes)
