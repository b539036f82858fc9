"""SEAL plumbing both parties share: contexts for pinned parameter sets, exact plaintext building and
reading, and byte (de)serialization of ciphertexts with validation against the pinned context.

This module is mechanism only. Which side encrypts, evaluates or decrypts what lives in the circuit
modules (`helix_he.linear_head`, `helix_he.cross_covariance`) and in `helix_he.keys`.
"""

from __future__ import annotations

import functools
import itertools
import os
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tenseal.sealapi as seal
import zstandard

from .modmath import NegacyclicNTT, centered, to_residues
from .params import CKKSParameterSet, get_parameter_set

SEAL_MAGIC = 0xA15E
_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, major, minor, compression, reserved, total size
_COMPR_NONE, _COMPR_ZLIB, _COMPR_ZSTD = 0, 1, 2


class CiphertextError(ValueError):
    """A ciphertext (or key) buffer is malformed, oversized or not for the expected parameters."""


def _scratch_dir() -> Path:
    """SEAL (de)serializes only through file paths; use RAM-backed storage where the OS has it."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="helix-seal-", dir=base))


_scratch_lock = threading.Lock()
_scratch: dict[int, Path] = {}
_counter = itertools.count()


def _scratch_file() -> Path:
    pid = os.getpid()
    with _scratch_lock:
        if pid not in _scratch:  # a forked worker must not share the parent's directory listing
            _scratch[pid] = _scratch_dir()
        return _scratch[pid] / f"{threading.get_ident()}-{next(_counter)}.bin"


def save_to_bytes(obj: object) -> bytes:
    """Serialize any sealapi object (or Serializable) that has `save(path)` to bytes."""
    path = _scratch_file()
    try:
        obj.save(str(path))  # type: ignore[attr-defined]
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def load_from_bytes(obj: object, context: seal.SEALContext, data: bytes) -> None:
    path = _scratch_file()
    try:
        path.write_bytes(data)
        obj.load(context, str(path))  # type: ignore[attr-defined]
    finally:
        path.unlink(missing_ok=True)


def check_seal_header(data: bytes, max_bytes: int) -> int:
    """Validate the SEAL serialization header before SEAL parses anything; return compression mode."""
    if len(data) > max_bytes:
        raise CiphertextError(f"buffer of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) < _HEADER.size:
        raise CiphertextError(f"buffer of {len(data)} bytes is too short for a SEAL header")
    magic, hsize, major, _minor, compr, _res, total = _HEADER.unpack_from(data)
    if magic != SEAL_MAGIC or hsize != _HEADER.size:
        raise CiphertextError("buffer does not start with a SEAL header")
    if major != 4:
        raise CiphertextError(f"unsupported SEAL serialization version {major}")
    if compr not in (_COMPR_NONE, _COMPR_ZSTD):
        raise CiphertextError(f"unsupported SEAL compression mode {compr}")
    if total != len(data):
        raise CiphertextError(f"SEAL header says {total} bytes but the buffer has {len(data)} (truncated?)")
    return int(compr)


@dataclass(frozen=True)
class Level:
    """One step of the modulus chain: its parms_id and its primes."""

    index: int  # 0 = first data level (all data primes); last = one prime
    parms_id: tuple[int, int, int, int]
    primes: tuple[int, ...]


class HEContext:
    """A SEAL CKKS context for one pinned parameter set plus exact coefficient-domain helpers."""

    def __init__(self, params: CKKSParameterSet) -> None:
        self.params = params
        self.n = params.poly_modulus_degree
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(self.n)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(self.n, list(params.coeff_mod_bit_sizes)))
        self.context = seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)
        if not self.context.parameters_set():
            raise ValueError(f"SEAL rejected {params.name}: {self.context.parameters_error_message()}")
        self.encoder = seal.CKKSEncoder(self.context)
        self.evaluator = seal.Evaluator(self.context)
        levels = []
        cd = self.context.first_context_data()
        idx = 0
        while cd is not None:
            primes = tuple(m.value() for m in cd.parms().coeff_modulus())
            levels.append(Level(idx, tuple(cd.parms_id()), primes))
            cd = cd.next_context_data()
            idx += 1
        self.levels: tuple[Level, ...] = tuple(levels)
        self._version = self._seal_version()
        self._ntt = self._learn_ntt()

    # --- levels -----------------------------------------------------------------------------------
    @property
    def input_level(self) -> Level:
        """Where fresh ciphertexts for our depth-1 circuits live: two primes, one to rescale away."""
        return self.levels[-2]

    @property
    def output_level(self) -> Level:
        return self.levels[-1]

    def level_of(self, parms_id: tuple[int, ...] | list[int]) -> Level:
        pid = tuple(parms_id)
        for lvl in self.levels:
            if lvl.parms_id == pid:
                return lvl
        raise CiphertextError("ciphertext parms_id is not in this parameter set's modulus chain")

    # --- exact plaintexts ------------------------------------------------------------------------
    def _seal_version(self) -> tuple[int, int]:
        pt = seal.Plaintext()
        self.encoder.encode(0.0, 1.0, pt)
        raw = save_to_bytes(pt)
        return raw[3], raw[4]

    def _learn_ntt(self) -> dict[int, NegacyclicNTT]:
        """Learn SEAL's NTT evaluation points by encoding the monomial c*X exactly (c = 2^20: SEAL
        flushes a scale-1 encoding to zero) and dividing c out modulo each prime."""
        c = 1 << 20
        mono = np.zeros(self.n)
        mono[1] = 1.0
        pt = seal.Plaintext()
        self.encoder.encode([complex(v) for v in coeffs_to_slots(mono)], list(self.levels[0].parms_id), float(c), pt)
        res = self.plaintext_residues(pt)
        out = {}
        for i, q in enumerate(self.levels[0].primes):
            c_inv = pow(c, q - 2, q)
            points = np.array([int(v) * c_inv % q for v in res[i]], dtype=np.uint64)
            out[q] = NegacyclicNTT(q, points)
        return out

    def ntt(self, q: int) -> NegacyclicNTT:
        return self._ntt[q]

    def plaintext_from_ntt(self, values: np.ndarray, level: Level, scale: float) -> seal.Plaintext:
        """Build an NTT-form plaintext from per-prime NTT values, shape (len(level.primes), N)."""
        values = np.ascontiguousarray(values, dtype="<u8")
        if values.shape != (len(level.primes), self.n):
            raise ValueError(f"expected NTT values of shape {(len(level.primes), self.n)}, got {values.shape}")
        count = values.size
        inner = struct.pack("<Q", count) + values.tobytes()
        inner = _HEADER.pack(SEAL_MAGIC, 16, *self._version, _COMPR_NONE, 0, 16 + len(inner)) + inner
        body = struct.pack("<4Q", *level.parms_id) + struct.pack("<Qd", count, scale) + inner
        raw = _HEADER.pack(SEAL_MAGIC, 16, *self._version, _COMPR_NONE, 0, 16 + len(body)) + body
        pt = seal.Plaintext()
        load_from_bytes(pt, self.context, raw)
        return pt

    def plaintext_from_coeffs(self, coeffs: np.ndarray, level: Level, scale: float) -> seal.Plaintext:
        """Exact NTT-form plaintext whose polynomial has the given signed integer coefficients."""
        return self.plaintext_from_ntt(self.coeffs_to_ntt(coeffs, level), level, scale)

    def coeffs_to_ntt(self, coeffs: np.ndarray, level: Level) -> np.ndarray:
        """Signed int64 coefficients (..., N) -> NTT values (..., primes, N) for `level`."""
        coeffs = np.asarray(coeffs)
        out = np.empty(coeffs.shape[:-1] + (len(level.primes), self.n), dtype=np.uint64)
        for i, q in enumerate(level.primes):
            out[..., i, :] = self._ntt[q].forward(to_residues(coeffs, q))
        return out

    def ntt_from_residues(self, residues: np.ndarray, q: int) -> np.ndarray:
        return self._ntt[q].forward(residues)

    def plaintext_residues(self, pt: seal.Plaintext) -> np.ndarray:
        """The raw data of a plaintext as (primes, N) uint64 (NTT values for NTT-form plaintexts)."""
        raw = save_to_bytes(pt)
        compr = check_seal_header(raw, 1 << 30)
        body = raw[16:]
        if compr == _COMPR_ZSTD:
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=64 * self.n * 16 + 4096)
        count = struct.unpack_from("<Q", body, 32)[0]
        data = np.frombuffer(body, dtype="<u8", count=count, offset=32 + 16 + 16 + 8)
        return data.reshape(-1, self.n).copy()

    def ciphertext_data(self, ct: seal.Ciphertext) -> np.ndarray:
        """The raw polynomials of a ciphertext as (size, primes, N) uint64 (for audits and tests)."""
        raw = save_to_bytes(ct)
        compr = check_seal_header(raw, 1 << 30)
        body = raw[16:]
        if compr == _COMPR_ZSTD:
            body = zstandard.ZstdDecompressor().decompress(
                body, max_output_size=ct.size() * ct.coeff_modulus_size() * self.n * 8 + 4096
            )
        count = ct.size() * ct.coeff_modulus_size() * self.n
        data = np.frombuffer(body[len(body) - 8 * count :], dtype="<u8")  # the data array ends the body
        return data.reshape(ct.size(), ct.coeff_modulus_size(), self.n).copy()

    def ciphertext_with_data(self, template: seal.Ciphertext, data: np.ndarray) -> seal.Ciphertext:
        """A ciphertext with `template`'s metadata (level, size, scale, NTT form) and new polynomial
        data of shape (size, primes, N); SEAL validates the result on load (every value < its prime)."""
        raw = save_to_bytes(template)
        compr = check_seal_header(raw, 1 << 30)
        body = raw[16:]
        if compr == _COMPR_ZSTD:
            body = zstandard.ZstdDecompressor().decompress(
                body, max_output_size=template.size() * template.coeff_modulus_size() * self.n * 8 + 4096
            )
        data = np.ascontiguousarray(data, dtype="<u8")
        if data.shape != (template.size(), template.coeff_modulus_size(), self.n):
            raise ValueError(f"data shape {data.shape} does not match the template ciphertext")
        body = body[: len(body) - data.nbytes] + data.tobytes()
        out = seal.Ciphertext()
        load_from_bytes(
            out, self.context, _HEADER.pack(SEAL_MAGIC, 16, *self._version, _COMPR_NONE, 0, 16 + len(body)) + body
        )
        return out

    def decode_last_level(self, pt: seal.Plaintext) -> np.ndarray:
        """Exact signed coefficients of a one-prime NTT-form plaintext, divided by its scale."""
        res = self.plaintext_residues(pt)
        if res.shape[0] != 1:
            raise ValueError("exact decoding expects a plaintext at the last level (one prime)")
        q = self.output_level.primes[0]
        coeffs = centered(self._ntt[q].inverse(res[0]), q)
        out: np.ndarray = coeffs.astype(np.float64) / pt.scale
        return out

    # --- ciphertext bytes -------------------------------------------------------------------------
    def ciphertext_from_bytes(self, data: bytes, *, level: Level, max_bytes: int) -> seal.Ciphertext:
        """Parse an untrusted ciphertext: header and size first, then SEAL's own validity check
        against *this* context, then the level we expect. Never `unsafe_load`."""
        check_seal_header(data, max_bytes)
        ct = seal.Ciphertext()
        try:
            load_from_bytes(ct, self.context, data)
        except (RuntimeError, ValueError) as exc:
            raise CiphertextError(f"ciphertext is not valid for parameter set {self.params.name}: {exc}") from None
        if tuple(ct.parms_id()) != level.parms_id:
            raise CiphertextError(
                f"ciphertext is at modulus level {self.level_of(ct.parms_id()).index}, expected {level.index}"
            )
        if ct.size() != 2 or not ct.is_ntt_form():
            raise CiphertextError("ciphertext must be a fresh size-2 NTT-form CKKS ciphertext")
        return ct


def coeffs_to_slots(coeffs: np.ndarray) -> np.ndarray:
    """Slot values whose CKKS encoding (scale 1) has the given real coefficients (SEAL slot order)."""
    n = len(coeffs)
    idx = _slot_index(n)
    zeta = np.exp(1j * np.pi * np.arange(n) / n)
    slots: np.ndarray = (np.fft.ifft(coeffs * zeta) * n)[idx]
    return slots


@functools.lru_cache(maxsize=4)
def _slot_index(n: int) -> np.ndarray:
    g = np.ones(n // 2, dtype=np.int64)
    for j in range(1, n // 2):
        g[j] = (g[j - 1] * 3) % (2 * n)  # SEAL walks the slots with generator 3
    return (g - 1) // 2


@functools.lru_cache(maxsize=4)
def he_context(param_set: str) -> HEContext:
    """One HEContext per parameter set per process (building one costs ~0.1 s)."""
    return HEContext(get_parameter_set(param_set))
