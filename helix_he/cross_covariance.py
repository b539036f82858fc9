"""The secure-alignment circuit, both halves: Enc(X) -> Enc(X^T Y_A), packed m columns per reply.

Client half: encrypt X (|x| <= 1) in the stride packing of `helix_he.packing.CrossCovarianceLayout`
and decrypt the packed result. Server half, in steps:

1. Products. Data ciphertexts arrive at the last level (one ~60-bit prime q). For each output column
   b the provider needs Z_b = sum_c ct_c * P_{c,b}, P_{c,b} = sum_t Y[s_t, b] X^(-t). Written on
   coefficients this is one exact matrix product modulo q per ciphertext polynomial:
   Z_b.c1[p] = sum_(c,t) c1_c[p + t] * Y[c*m + t, b] (negacyclic: index p + t >= N wraps with a
   minus sign), an N x n by n x d_A product. It runs as float64 BLAS: the centred residues are split
   into three signed 20-bit limbs, Y is a small integer (<= 2^24), and the inner dimension is cut
   into chunks short enough that every partial sum is an exact integer below 2^53.
   Only the multiples of m of Z_b.c0 are needed (the trace ignores the others and acts on c0
   without key switching), an (N/m) x n by n x d_A product.
2. The factor m of the trace is divided out in advance (multiplying by m^-1 mod q is exact).
3. Packing tree (Chen, Dai, Kim, Song 2021, PackLWEs, here on polynomials): m columns at a time,
   combine(E, O) = E + X^s O + sigma(E - X^s O), one key switch per combination; the result holds
   column j of the group at X^(a*m + j). Key switching at the last level is cheap.
4. Every coefficient that is not an output is masked with a value uniform modulo q
   (`MaskedReply`); the result is re-randomised with a fresh encryption of zero (`Rerandomizer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tenseal.sealapi as seal
from numpy.lib.stride_tricks import sliding_window_view

from .budget import Y_MAX_BITS, flooding_noise, y_scale_bits_for
from .context import CiphertextError, HEContext, save_to_bytes
from .keys import ClientKeys, Rerandomizer
from .modmath import U64, addmod, centered, mulmod, uniform_mod
from .packing import CrossCovarianceLayout

_LIMB_BITS = 20
_LIMB_HALF = 1 << (_LIMB_BITS - 1)
_FLOAT_EXACT_BITS = 53
_MATRIX_ELEMENTS = 1 << 21  # rows x samples per block of the coefficient matrix (~50 MB of limbs)

# ================================================================================== client half


def encrypt_alignment_data(
    keys: ClientKeys, x: np.ndarray, layout: CrossCovarianceLayout, start: int, count: int
) -> list[bytes]:
    """Ciphertexts [start, start+count) of the stride packing, at the last level (the circuit
    needs no rescale), SEAL-seeded, at scale 2^layout.data_scale_bits; x must satisfy |x| <= 1."""
    scale = float(2**layout.data_scale_bits)
    coeffs = [
        layout.data_coefficients(x[r.start : r.stop], scale)
        for r in (layout.sample_range(c) for c in range(start, start + count))
    ]
    return keys.encrypt_seal(np.stack(coeffs), scale)


class ResultShape(Protocol):
    """What the client needs to know about a result (the wire header has these fields)."""

    @property
    def feature_dim(self) -> int: ...
    @property
    def output_columns(self) -> int: ...
    @property
    def stride_bits(self) -> int: ...


@dataclass(frozen=True)
class PackedResultShape:
    """A `ResultShape` from the layout itself (what the provider's result header announces)."""

    feature_dim: int
    output_columns: int
    stride_bits: int

    @classmethod
    def of(cls, layout: CrossCovarianceLayout, output_columns: int) -> PackedResultShape:
        return cls(layout.feature_dim, output_columns, layout.stride_bits)


def decrypt_cross_covariance(
    keys: ClientKeys, shape: ResultShape, blobs: Sequence[bytes], max_bytes: int = 1 << 22
) -> np.ndarray:
    """-> (feature_dim, output_columns) = X^T Y (before the client undoes its own X scaling).
    Result ciphertext g carries columns [g*m, (g+1)*m) at coefficients a*m + j (m = 2^stride_bits)."""
    feature_dim, output_columns, stride_bits = shape.feature_dim, shape.output_columns, shape.stride_bits
    m = 1 << stride_bits
    if feature_dim * m > keys.he.n:
        raise ValueError(f"result header's stride 2^{stride_bits} does not fit {feature_dim} features")
    groups = -(-output_columns // m)
    if len(blobs) != groups:
        raise ValueError(f"result has {len(blobs)} ciphertexts, expected {groups}")
    out = np.zeros((feature_dim, output_columns))
    rows = np.arange(feature_dim)[:, None] * m
    for g, blob in enumerate(blobs):
        width = min(m, output_columns - g * m)
        coeffs = keys.decrypt_seal(blob, max_bytes)
        out[:, g * m : g * m + width] = coeffs[rows + np.arange(width)[None, :]]
    return out


# ================================================================================== server half


def validate_alignment_ciphertexts(
    he: HEContext, blobs: Sequence[bytes], *, max_ciphertext_bytes: int, scale_bits: int
) -> None:
    """Full SEAL validation of uploaded alignment ciphertexts (last level: the stride layout's depth
    needs no rescale) at the declared scale; CiphertextError names the first bad one."""
    for i, blob in enumerate(blobs):
        try:
            ct = he.ciphertext_from_bytes(blob, level=he.output_level, max_bytes=max_ciphertext_bytes)
        except CiphertextError as exc:
            raise CiphertextError(f"ciphertext {i}: {exc}") from None
        if abs(ct.scale - 2.0**scale_bits) > 1e-6 * ct.scale:
            raise CiphertextError(f"ciphertext {i}: scale is 2^{np.log2(ct.scale):.2f}, header says 2^{scale_bits}")


class MaskedReply:
    """Builds the additive plaintext that randomises every non-output coefficient of a reply."""

    def __init__(self, he: HEContext) -> None:
        self.he = he
        self.level = he.output_level
        self.q = self.level.primes[0]

    def plaintext(
        self, positions: np.ndarray, outputs: np.ndarray, scale: float, noise_bits: int = 0
    ) -> seal.Plaintext:
        """Uniform mod q everywhere, except `positions`, which get round(outputs * scale) + noise."""
        coeffs = uniform_mod(self.q, self.he.n)
        vals = np.round(np.asarray(outputs, dtype=np.float64) * scale).astype(np.int64)
        vals = vals + flooding_noise(len(vals), noise_bits)
        coeffs[positions] = (vals % np.int64(self.q)).astype(U64)
        ntt = self.he.ntt(self.q).forward(coeffs)
        return self.he.plaintext_from_ntt(ntt[None, :], self.level, scale)


def _limbs(v: np.ndarray) -> np.ndarray:
    """Centred int64 values (|v| < 2^59) -> (3, ...) float64 signed limbs, v = l0 + 2^20 l1 + 2^40 l2,
    each |l| <= 2^19, written straight into one float array (this runs on every coefficient of every
    data polynomial, so temporaries cost as much as the arithmetic)."""
    mask = np.int64((1 << _LIMB_BITS) - 1)
    half = np.int64(_LIMB_HALF)
    out = np.empty((3,) + v.shape, dtype=np.float64)
    low = (v + half) & mask
    low -= half
    out[0] = low
    rest = v - low
    rest >>= _LIMB_BITS
    low = (rest + half) & mask
    low -= half
    out[1] = low
    rest -= low
    rest >>= _LIMB_BITS
    out[2] = rest
    return out


class ExactModMatmul:
    """(rows x K centred residues) @ (K x C small signed integers) mod q, exactly, with float BLAS."""

    def __init__(self, y_int: np.ndarray, q: int) -> None:
        self.q = q
        self.y = np.ascontiguousarray(y_int, dtype=np.float64)
        peak = int(np.abs(y_int).max()) if y_int.size else 0
        bits = max(1, peak.bit_length())
        # every partial sum: chunk * 2^19 * peak < 2^53
        self.chunk = max(1, 1 << max(0, _FLOAT_EXACT_BITS - (_LIMB_BITS - 1) - bits - 1))
        self._w1 = np.uint64((1 << _LIMB_BITS) % q)
        self._w2 = np.uint64((1 << (2 * _LIMB_BITS)) % q)

    def __call__(self, m: np.ndarray) -> np.ndarray:
        """m: (rows, K) int64 centred residues -> (rows, C) residues in [0, q)."""
        return self.of_limbs(_limbs(m))

    def of_limbs(self, limbs: np.ndarray) -> np.ndarray:
        """The same product from the limbs of m, (3, rows, K) float64 (`_limbs`)."""
        _, rows, k = limbs.shape
        flat = limbs.reshape(3 * rows, k)
        acc = np.zeros((3 * rows, self.y.shape[1]), dtype=np.int64)
        for k0 in range(0, k, self.chunk):
            acc += (flat[:, k0 : k0 + self.chunk] @ self.y[k0 : k0 + self.chunk]).astype(np.int64)
        q = np.int64(self.q)
        s = (acc % q).astype(U64).reshape(3, rows, -1)
        out = addmod(s[0], mulmod(s[1], np.broadcast_to(self._w1, s[1].shape), self.q), self.q)
        return addmod(out, mulmod(s[2], np.broadcast_to(self._w2, s[2].shape), self.q), self.q)


def _column_polynomials(
    he: HEContext, layout: CrossCovarianceLayout, data: list[np.ndarray], y_int: np.ndarray
) -> np.ndarray:
    """Z_b for every column of y_int, as coefficient residues (2, C, N): c0 only on multiples of m
    (the rest is irrelevant to the trace, left zero), c1 whole.

    The limbs are taken of the data polynomials once, before the sliding windows repeat every
    coefficient m times in the product's left matrix."""
    n, m, q = he.n, layout.stride, he.output_level.primes[0]
    ntt = he.ntt(q)
    count = len(data)
    cols = y_int.shape[1]
    # Coefficient form of every data ciphertext, centred: (count, 2, N).
    coeffs = centered(ntt.inverse(np.stack(data).reshape(count * 2, n)), q).reshape(count, 2, n)
    padded = np.zeros((count * m, cols), dtype=np.int64)
    padded[: y_int.shape[0]] = y_int
    mm = ExactModMatmul(padded, q)
    out = np.zeros((2, cols, n), dtype=U64)
    # c0 on multiples of m: row a, sample (c, t) -> c0_c[a*m + t] (never wraps).
    c0 = _limbs(coeffs[:, 0, :]).reshape(3, count, n // m, m).transpose(0, 2, 1, 3).reshape(3, n // m, count * m)
    out[0][:, ::m] = mm.of_limbs(c0).T
    # c1 whole: row p, sample (c, t) -> c1_c[p + t], minus c1_c[p + t - N] past the end.
    ext = _limbs(np.concatenate([coeffs[:, 1, :], -coeffs[:, 1, : m - 1]], axis=1))  # (3, count, N + m - 1)
    windows = sliding_window_view(ext, m, axis=2)  # (3, count, N, m) view
    block = max(m, min(n, _MATRIX_ELEMENTS // (count * m)))
    for p0 in range(0, n, block):
        rows = windows[:, :, p0 : p0 + block, :].transpose(0, 2, 1, 3).reshape(3, -1, count * m)
        out[1][:, p0 : p0 + block] = mm.of_limbs(rows).T
    return out


class _Packer:
    """The packing tree over SEAL ciphertexts at the last level."""

    def __init__(self, he: HEContext, layout: CrossCovarianceLayout, galois_keys: seal.GaloisKeys) -> None:
        self.he, self.m, self.keys = he, layout.stride, galois_keys
        lvl = he.output_level
        self._monomials: dict[int, seal.Plaintext] = {}
        for s in (self.m >> i for i in range(1, layout.stride_bits + 1)):
            mono = np.zeros(he.n, dtype=np.int64)
            mono[s] = 1
            self._monomials[s] = he.plaintext_from_coeffs(mono, lvl, 1.0)

    def pack(self, cts: list[seal.Ciphertext | None]) -> seal.Ciphertext | None:
        """Ciphertexts of Z_0 .. Z_(k-1) (k = m, None for absent or all-zero columns) -> one
        ciphertext with m * (coefficients of Z_j on multiples of m) moved to offset j."""
        if len(cts) == 1:
            return cts[0]
        k = len(cts)
        even, odd = self.pack(cts[0::2]), self.pack(cts[1::2])
        if even is None and odd is None:
            return None
        ev = self.he.evaluator
        s = self.m // k
        elt = 1 + k * self.he.n // self.m  # sigma(X^s) = -X^s; it fixes every offset of the lower levels
        shifted = None
        if odd is not None:
            shifted = seal.Ciphertext()
            ev.multiply_plain(odd, self._monomials[s], shifted)
        if even is None:
            diff = seal.Ciphertext()
            ev.negate(shifted, diff)
            base = shifted
        elif shifted is None:
            diff, base = even, even
        else:
            diff = seal.Ciphertext()
            ev.sub(even, shifted, diff)
            base = seal.Ciphertext()
            ev.add(even, shifted, base)
        turned = seal.Ciphertext()
        ev.apply_galois(diff, elt, self.keys, turned)
        ev.add_inplace(base, turned)
        return base


def _fold_inputs(
    layout: CrossCovarianceLayout, count: int, y_int: np.ndarray, rows: np.ndarray | None
) -> tuple[list[int], np.ndarray]:
    """The data ciphertexts a fold touches and the matching rows of Y (m per ciphertext), zero
    outside the fold: X^T (D_k Y) = X_k^T Y_k with D_k the fold's 0/1 diagonal."""
    m = layout.stride
    padded = np.zeros((count * m, y_int.shape[1]), dtype=np.int64)
    if rows is None:
        padded[: y_int.shape[0]] = y_int
        return list(range(count)), padded
    padded[rows] = y_int[rows]
    used = sorted({int(c) for c in np.asarray(rows) // m})
    return used, padded.reshape(count, m, -1)[used].reshape(len(used) * m, -1)


def encrypted_cross_covariance(
    he: HEContext,
    layout: CrossCovarianceLayout,
    load_ciphertext: Callable[[int], seal.Ciphertext],
    y: np.ndarray,
    groups: range,
    rerandomizer: Rerandomizer,
    galois_keys: seal.GaloisKeys,
    *,
    y_scale_bits: int,
    folds: Sequence[np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[bytes], float]:
    """Result ciphertexts `groups` (group g = columns [g*m, (g+1)*m) of X^T Y) from the data
    ciphertexts. With `folds` (sample indices of each part), the same
    groups of X_k^T Y_k for every fold k, fold-major; each product touches only the fold's
    ciphertexts, so the products cost about what one full result does and the packing K times.
    Returns (serialized replies, value scale of the outputs)."""
    lvl = he.output_level
    q = lvl.primes[0]
    m = layout.stride
    y = np.asarray(y, dtype=np.float64)
    d_a = y.shape[1]
    all_groups = layout.result_groups(d_a)
    col_lo = all_groups[groups.start].start
    col_hi = all_groups[groups.stop - 1].stop
    y_int = np.round(np.ldexp(y[:, col_lo:col_hi], y_scale_bits)).astype(np.int64)
    if y_int.size and int(np.abs(y_int).max()) > 1 << Y_MAX_BITS:
        raise ValueError(f"Y at scale 2^{y_scale_bits} exceeds 2^{Y_MAX_BITS}")
    template: seal.Ciphertext | None = None
    data = []
    for c in range(layout.num_ciphertexts):
        ct = load_ciphertext(c)
        if template is None:
            template = ct
        data.append(he.ciphertext_data(ct)[:, 0, :])
    assert template is not None
    scale = template.scale * 2.0**y_scale_bits
    m_inv = np.uint64(pow(m, q - 2, q))
    packer = _Packer(he, layout, galois_keys)
    masker = MaskedReply(he)
    blobs = []
    for rows in folds if folds is not None else [None]:
        used, y_part = _fold_inputs(layout, len(data), y_int, rows)
        polys = _column_polynomials(he, layout, [data[c] for c in used], y_part)  # (2, C, N)
        polys = mulmod(polys, np.broadcast_to(m_inv, polys.shape), q)
        ntt = he.ntt(q).forward(polys.reshape(-1, he.n)).reshape(polys.shape)
        nonzero = np.any(y_part != 0, axis=0)
        for g in groups:
            cols = all_groups[g]
            cts: list[seal.Ciphertext | None] = [None] * m
            for j, b in enumerate(cols):
                local = b - col_lo
                if nonzero[local]:
                    ct = he.ciphertext_with_data(template, ntt[:, local, :][:, None, :])
                    ct.scale = scale
                    cts[j] = ct
            out = packer.pack(cts)
            if out is None:  # every column of the group is zero: an encryption of zero carries them
                out = he.ciphertext_with_data(template, np.zeros((2, 1, he.n), dtype=U64))
                out.scale = scale
                rerandomizer.apply(out)
            positions = layout.result_positions(len(cols)).reshape(-1)
            he.evaluator.add_plain_inplace(out, masker.plaintext(positions, np.zeros(len(positions)), out.scale))
            rerandomizer.apply(out)
            blobs.append(save_to_bytes(out))
            if progress is not None:
                progress(len(blobs))
    return blobs, scale


__all__ = [
    "MaskedReply",
    "decrypt_cross_covariance",
    "encrypt_alignment_data",
    "encrypted_cross_covariance",
    "validate_alignment_ciphertexts",
    "y_scale_bits_for",
]
