"""The provider's secure-alignment circuit: Enc(X) -> Enc(X^T Y_A), packed m columns per reply.

Steps (layout and algebra in `shared_protocol.packing.CrossCovarianceLayout`):

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

import math
from collections.abc import Callable, Sequence

import numpy as np
import tenseal.sealapi as seal
from numpy.lib.stride_tricks import sliding_window_view

from shared_protocol.ckks import HEContext, save_to_bytes
from shared_protocol.modmath import U64, addmod, centered, mulmod, to_residues
from shared_protocol.packing import CrossCovarianceLayout

from .he_circuits import MaskedReply, Rerandomizer

Y_MAX_BITS = 24  # |Y_int| <= 2^24: with 20-bit limbs a chunk of 512 samples stays below 2^53
OUTPUT_BOUND_BITS = 57  # |(X^T Y_int)[a, b]| * data scale < 2^57 < q/2 for a 60-bit q, room for noise
_LIMB_BITS = 20
_LIMB_HALF = 1 << (_LIMB_BITS - 1)
_FLOAT_EXACT_BITS = 53
_MATRIX_ELEMENTS = 1 << 21  # rows x samples per block of the coefficient matrix (~50 MB of limbs)


def y_scale_bits_for(y: np.ndarray, data_scale_bits: int) -> int:
    """log2 of the scale for Y so that every output fits the prime: the client sends |x| <= 1, so
    |(X^T Y)[a, b]| <= ||Y[:, b]||_1 exactly; and |Y_int| <= 2^Y_MAX_BITS for the exact float product.
    May be negative for huge Y (a power of two keeps the scaling exact either way)."""
    y = np.asarray(y, dtype=np.float64)
    l1 = float(np.abs(y).sum(axis=0).max()) if y.size else 0.0
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak == 0.0:
        return Y_MAX_BITS
    by_sum = math.floor(OUTPUT_BOUND_BITS - data_scale_bits - math.log2(l1 + 1.0))
    by_peak = math.floor(Y_MAX_BITS - math.log2(peak)) if peak > 0 else Y_MAX_BITS
    return min(by_sum, by_peak)


def _limbs(v: np.ndarray) -> np.ndarray:
    """Centred int64 values (|v| < 2^59) -> (3, ...) float64 signed limbs, v = l0 + 2^20 l1 + 2^40 l2,
    each |l| <= 2^19."""
    mask = np.int64((1 << _LIMB_BITS) - 1)
    half = np.int64(_LIMB_HALF)
    l0 = ((v + half) & mask) - half
    v1 = (v - l0) >> _LIMB_BITS
    l1 = ((v1 + half) & mask) - half
    l2 = (v1 - l1) >> _LIMB_BITS
    return np.stack([l0, l1, l2]).astype(np.float64)


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
        rows, k = m.shape
        limbs = _limbs(m).reshape(3 * rows, k)
        acc = np.zeros((3 * rows, self.y.shape[1]), dtype=np.int64)
        for k0 in range(0, k, self.chunk):
            acc += (limbs[:, k0 : k0 + self.chunk] @ self.y[k0 : k0 + self.chunk]).astype(np.int64)
        q = np.int64(self.q)
        s = (acc % q).astype(U64).reshape(3, rows, -1)
        out = addmod(s[0], mulmod(s[1], np.broadcast_to(self._w1, s[1].shape), self.q), self.q)
        return addmod(out, mulmod(s[2], np.broadcast_to(self._w2, s[2].shape), self.q), self.q)


def _column_polynomials(he: HEContext, layout: CrossCovarianceLayout, data: list[np.ndarray], y_int: np.ndarray) -> np.ndarray:
    """Z_b for every column of y_int, as coefficient residues (2, C, N): c0 only on multiples of m
    (the rest is irrelevant to the trace, left zero), c1 whole."""
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
    c0 = coeffs[:, 0, :].reshape(count, n // m, m).transpose(1, 0, 2).reshape(n // m, count * m)
    out[0][:, ::m] = mm(c0).T
    # c1 whole: row p, sample (c, t) -> c1_c[p + t], minus c1_c[p + t - N] past the end.
    ext = np.concatenate([coeffs[:, 1, :], -coeffs[:, 1, : m - 1]], axis=1)
    windows = sliding_window_view(ext, m, axis=1)  # (count, N, m) view
    block = max(m, min(n, _MATRIX_ELEMENTS // (count * m)))
    for p0 in range(0, n, block):
        rows = windows[:, p0 : p0 + block, :].transpose(1, 0, 2).reshape(-1, count * m)
        out[1][:, p0 : p0 + block] = mm(rows).T
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


def _fold_inputs(layout: CrossCovarianceLayout, count: int, y_int: np.ndarray, rows: np.ndarray | None
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
    ciphertexts. With `folds` (sample indices of each part, `shared_protocol.folds`), the same
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
    for rows in (folds if folds is not None else [None]):
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
