"""Exact vectorised arithmetic modulo the CKKS primes (< 2^61), in numpy.

Why: SEAL's CKKS encoder rejects dense plaintexts above ~2^56 and computes in floating point, so it
cannot build a mask that is *uniform over the whole modulus* while leaving chosen coefficients
exactly zero, and its float decoding blurs outputs when the other coefficients are huge. Working on
the residues ourselves (negacyclic NTT in SEAL's own slot order) gives exact plaintexts and exact
decryption. Products of two 61-bit residues do not fit 64 bits, so the quotient is estimated in
80-bit long double (64-bit mantissa) and the remainder recovered with wrapping uint64 arithmetic.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ._native import load_kernel

_KERNEL = load_kernel()

if np.finfo(np.longdouble).nmant < 63:  # pragma: no cover - x86-64 Linux always has 80-bit long double
    raise ImportError("helix_he.modmath needs an 80-bit long double (x86-64)")

U64 = np.uint64


_U64P = ctypes.POINTER(ctypes.c_uint64)


def _ptr(a: np.ndarray) -> ctypes._Pointer[ctypes.c_uint64]:
    return a.ctypes.data_as(_U64P)


def mulmod(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    """(a * b) mod q elementwise for uint64 arrays with entries < q < 2^61 (broadcasting)."""
    a = np.asarray(a, dtype=U64)
    b = np.asarray(b, dtype=U64)
    if _KERNEL is not None:
        a, b = (np.ascontiguousarray(v) for v in np.broadcast_arrays(a, b))
        out = np.empty(a.shape, dtype=U64)
        _KERNEL.helix_mulmod(_ptr(a), _ptr(b), a.size, q, _ptr(out))
        return out
    return mulmod_numpy(a, b, q)


def mulmod_numpy(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    """The pure-numpy product (fallback, and the reference the kernel is tested against)."""
    a = np.asarray(a, dtype=U64)
    b = np.asarray(b, dtype=U64)
    qhat = np.floor(a.astype(np.longdouble) * b.astype(np.longdouble) / np.longdouble(q)).astype(U64)
    with np.errstate(over="ignore"):
        r = (a * b - qhat * U64(q)).view(np.int64)
    r = np.where(r < 0, r + np.int64(q), r)
    r = np.where(r >= np.int64(q), r - np.int64(q), r)
    out: np.ndarray = r.view(U64)
    return out


class FixedMultiplier:
    """Products with one operand fixed for many calls (head weights, keys): Shoup's precomputed
    quotients make each product one high multiply in the kernel."""

    def __init__(self, w: np.ndarray, q: int) -> None:
        self.q = int(q)
        self.w = np.ascontiguousarray(w, dtype=U64).reshape(-1)
        self.shoup = np.empty_like(self.w)
        if _KERNEL is not None:
            _KERNEL.helix_shoup_table(_ptr(self.w), self.w.size, self.q, _ptr(self.shoup))

    def __call__(self, a: np.ndarray) -> np.ndarray:
        """a (..., len(w)) times w, mod q."""
        a = np.ascontiguousarray(a, dtype=U64)
        if _KERNEL is None:
            return mulmod_numpy(a, np.broadcast_to(self.w, a.shape), self.q)
        out = np.empty(a.shape, dtype=U64)
        _KERNEL.helix_mulmod_fixed(
            _ptr(a), a.size // self.w.size, self.w.size, _ptr(self.w), _ptr(self.shoup), self.q, _ptr(out)
        )
        return out


def dot_rows(v: np.ndarray, rows: np.ndarray, q: int) -> np.ndarray:
    """(rows @ v) mod q for residues: v (N,), rows (r, N) -> (r,)."""
    v = np.ascontiguousarray(v, dtype=U64)
    rows = np.ascontiguousarray(rows, dtype=U64)
    if _KERNEL is None:
        return np.array([sum(int(a) * int(b) for a, b in zip(v, row, strict=True)) % q for row in rows], dtype=U64)
    out = np.empty(rows.shape[0], dtype=U64)
    _KERNEL.helix_dot_rows(_ptr(v), _ptr(rows), rows.shape[0], rows.shape[1], q, _ptr(out))
    return out


def small_lincomb(w: np.ndarray, c: np.ndarray, q: int) -> np.ndarray:
    """(w @ c) mod q for small signed integer weights w (k, d), |w| < 2^40, and residues c (d, n)."""
    w = np.ascontiguousarray(w, dtype=np.int64)
    c = np.ascontiguousarray(c, dtype=U64)
    if int(np.abs(w).max(initial=0)) >= 1 << 40:
        raise ValueError("weights must be below 2^40 in magnitude")
    k, d = w.shape
    n = c.shape[1]
    if _KERNEL is None:
        out = np.zeros((k, n), dtype=object)
        for i in range(d):
            out = out + w[:, i : i + 1].astype(object) * c[i : i + 1].astype(object)
        return (out % q).astype(U64)
    out = np.empty((k, n), dtype=U64)
    scratch = np.empty(4 * n, dtype=U64)
    _KERNEL.helix_lincomb(
        w.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), k, d, _ptr(c), n, q, _ptr(out), _ptr(scratch)
    )
    return out


def addmod(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    """(a + b) mod q for residues (one temporary: conditional subtraction in place)."""
    if _KERNEL is not None:
        a, b = (np.ascontiguousarray(v, dtype=U64) for v in np.broadcast_arrays(a, b))
        out = np.empty(a.shape, dtype=U64)
        _KERNEL.helix_addmod(_ptr(a), _ptr(b), a.size, q, _ptr(out))
        return out
    s: np.ndarray = np.add(a, b, dtype=U64)
    np.subtract(s, U64(q), out=s, where=s >= U64(q))
    return s


def submod(a: np.ndarray, b: np.ndarray, q: int) -> np.ndarray:
    """(a - b) mod q for residues: wrapping uint64 difference, plus q where it wrapped."""
    if _KERNEL is not None:
        a, b = (np.ascontiguousarray(v, dtype=U64) for v in np.broadcast_arrays(a, b))
        out = np.empty(a.shape, dtype=U64)
        _KERNEL.helix_submod(_ptr(a), _ptr(b), a.size, q, _ptr(out))
        return out
    a, b = np.asarray(a, dtype=U64), np.asarray(b, dtype=U64)
    d: np.ndarray = np.subtract(a, b, dtype=U64)
    np.add(d, U64(q), out=d, where=a < b)
    return d


def uniform_mod(q: int, size: int) -> np.ndarray:
    """Cryptographically uniform residues in [0, q) (os.urandom + rejection, no modulo bias).

    Used for reply masks: a mask must be uniform over the whole modulus so that the coefficients it
    covers reveal nothing, not merely be large noise."""
    import os

    bits = q.bit_length()
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(0, dtype=U64)
    while out.size < size:
        need = size - out.size
        draw = np.frombuffer(os.urandom(8 * (need + need // 8 + 16)), dtype=U64) & mask
        out = np.concatenate([out, draw[draw < U64(q)][:need]])
    return out


def switch_to_power_of_two(residues: np.ndarray, q: int, bits: int) -> np.ndarray:
    """round(c * 2^bits / q) mod 2^bits for residues c in [0, q): CKKS modulus switching from the prime q
    down to 2^bits. A ciphertext (c0, c1) with c0 + c1*s = m + e (mod q) becomes one with
    c0' + c1'*s = m * 2^bits / q + e' (mod 2^bits), |e'| about the rounding errors (|r0 + r1*s|, r in
    [-1/2, 1/2]) plus e scaled down. q < 2^53 is exact in float64; the product's rounding (relative
    2^-53) moves a result by one unit only when it lies within ~2^(bits - 53) of a half, which is one
    more unit of the same rounding noise."""
    if q >= 1 << 53:
        raise ValueError("modulus switching in float64 needs q < 2^53")
    t = np.asarray(residues, dtype=U64).astype(np.float64) * (2.0**bits / q)
    out: np.ndarray = np.rint(t).astype(np.int64).astype(U64) & U64((1 << bits) - 1)
    return out


def to_residues(values: np.ndarray, q: int) -> np.ndarray:
    """Signed int64 values -> residues in [0, q). Fast path for |v| < q (numpy's int64 % is slow)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and -q < int(v.min()) and int(v.max()) < q:
        if _KERNEL is not None:
            v = np.ascontiguousarray(v)
            out = np.empty(v.shape, dtype=U64)
            _KERNEL.helix_signed_residues(v.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), v.size, q, _ptr(out))
            return out
        r = v.astype(U64)  # a negative v becomes 2^64 + v; adding q wraps it to q + v
        np.add(r, U64(q), out=r, where=v < 0)
        return r
    return (v % np.int64(q)).astype(U64)


def centered(residues: np.ndarray, q: int) -> np.ndarray:
    """Residues in [0, q) -> signed representatives in (-q/2, q/2]."""
    r = residues.astype(np.int64)
    return np.where(r > np.int64(q // 2), r - np.int64(q), r)


def _bitrev(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev


class NegacyclicNTT:
    """Negacyclic NTT over Z_q[X]/(X^N + 1) whose output order matches SEAL's NTT form.

    `psi_points[i]` is the evaluation point SEAL uses at NTT index i (learned once from SEAL by
    encoding the monomial X); the transform evaluates a polynomial at those points, so a vector built
    here can be loaded as a SEAL NTT-form plaintext and multiplied with SEAL ciphertexts directly.
    """

    def __init__(self, q: int, psi_points: np.ndarray) -> None:
        self.q = int(q)
        n = len(psi_points)
        self.n = n
        psi = int(psi_points[0])
        # All odd powers of one primitive 2N-th root = all primitive 2N-th roots, so SEAL's points are
        # a permutation of psi^(2t+1); find t for each SEAL index.
        omega = psi * psi % self.q
        pow_odd = {}
        cur = psi
        for t in range(n):
            pow_odd[cur] = t
            cur = cur * omega % self.q
        try:
            self.perm = np.array([pow_odd[int(p)] for p in psi_points], dtype=np.int64)
        except KeyError as exc:  # pragma: no cover - would mean SEAL changed its transform
            raise ValueError("SEAL NTT points are not the odd powers of a 2N-th root") from exc
        self.inv_perm = np.empty(n, dtype=np.int64)
        self.inv_perm[self.perm] = np.arange(n)
        self.bitrev = _bitrev(n)
        self.psi_pows = self._powers(psi, n)
        psi_inv = pow(psi, self.q - 2, self.q)
        self.psi_inv_pows = self._powers(psi_inv, n)
        self.n_inv = pow(n, self.q - 2, self.q)
        omega_inv = pow(omega, self.q - 2, self.q)
        self.stage_twiddles = self._stage_twiddles(omega)
        self.stage_twiddles_inv = self._stage_twiddles(omega_inv)
        self.inv_scale = mulmod(self.psi_inv_pows, np.full(n, self.n_inv, dtype=U64), self.q)
        if _KERNEL is not None:
            tw = np.ascontiguousarray(np.concatenate(self.stage_twiddles), dtype=U64)
            tw_inv = np.ascontiguousarray(np.concatenate(self.stage_twiddles_inv), dtype=U64)
            self._tw = (tw, self._shoup(tw))
            self._tw_inv = (tw_inv, self._shoup(tw_inv))
            self._pre = (self.psi_pows, self._shoup(self.psi_pows))
            self._post = (self.inv_scale, self._shoup(self.inv_scale))
            # SEAL's order is the merged (Longa-Naehrig) transform's: use that kernel, no permutations.
            self._merged = bool(np.array_equal(self.perm, self.bitrev))
            if self._merged:
                pows = self._powers(psi, n)
                inv_pows = self._powers(psi_inv, n)
                psi_rev = np.ascontiguousarray(pows[self.bitrev])
                psi_inv_rev = np.ascontiguousarray(inv_pows[self.bitrev])
                self._ln = (
                    psi_rev,
                    self._shoup(psi_rev),
                    psi_inv_rev,
                    self._shoup(psi_inv_rev),
                    self.n_inv,
                    (self.n_inv << 64) // self.q,
                )

    def _powers(self, base: int, count: int) -> np.ndarray:
        out = np.empty(count, dtype=U64)
        cur = 1
        for i in range(count):
            out[i] = cur
            cur = cur * base % self.q
        return out

    def _stage_twiddles(self, omega: int) -> list[np.ndarray]:
        tw = []
        m = 1
        all_pows = self._powers(omega, self.n)
        while m < self.n:
            step = self.n // (2 * m)
            tw.append(all_pows[np.arange(m) * step])
            m *= 2
        return tw

    def _cyclic(self, a: np.ndarray, twiddles: list[np.ndarray]) -> np.ndarray:
        q = self.q
        batch = a.shape[0]
        a = a[:, self.bitrev]
        m = 1
        for w in twiddles:
            blocks = a.reshape(batch, self.n // (2 * m), 2, m)
            u = blocks[:, :, 0, :]
            v = mulmod(blocks[:, :, 1, :], np.broadcast_to(w, blocks[:, :, 1, :].shape), q)
            a = np.stack([addmod(u, v, q), submod(u, v, q)], axis=2).reshape(batch, self.n)
            m *= 2
        return a

    @property
    def native(self) -> bool:
        return _KERNEL is not None

    def coefficient_rows(self, positions: np.ndarray) -> np.ndarray:
        """Rows R (len(positions), N) with inverse(v)[j] = sum_i v[i] * R[j, i] mod q: a handful of
        coefficients of an inverse transform for N products each, instead of a whole transform."""
        n, q = self.n, self.q
        psi = int(self.psi_pows[1])
        table = np.empty(2 * n, dtype=U64)
        table[:n] = self._powers(psi, n)
        table[n:] = (U64(q) - table[:n]) % U64(q)  # psi^(N + e) = -psi^e
        exps = 2 * self.perm + 1  # SEAL index i evaluates at psi^(2 perm[i] + 1)
        pos = np.asarray(positions, dtype=np.int64).reshape(-1, 1)
        rows = table[(-(exps[None, :] * pos)) % (2 * n)]
        return mulmod(rows, np.full(rows.shape, self.n_inv, dtype=U64), q)

    def _shoup(self, w: np.ndarray) -> np.ndarray:
        """floor(w * 2^64 / q) per entry: the precomputed quotients of Shoup multiplication."""
        return np.array([(int(v) << 64) // self.q for v in w], dtype=U64)

    def _native_call(
        self,
        fn: object,
        a: np.ndarray,
        vec: tuple[np.ndarray, np.ndarray],
        perm: np.ndarray,
        tw: tuple[np.ndarray, np.ndarray],
    ) -> np.ndarray:
        a = np.array(a, dtype=U64, order="C", copy=True)
        tmp = np.empty(self.n, dtype=U64)
        u64p = ctypes.POINTER(ctypes.c_uint64)
        i64p = ctypes.POINTER(ctypes.c_int64)
        fn(  # type: ignore[operator]
            a.ctypes.data_as(u64p),
            a.shape[0],
            self.n,
            self.q,
            vec[0].ctypes.data_as(u64p),
            vec[1].ctypes.data_as(u64p),
            tw[0].ctypes.data_as(u64p),
            tw[1].ctypes.data_as(u64p),
            self.bitrev.ctypes.data_as(i64p),
            perm.ctypes.data_as(i64p),
            tmp.ctypes.data_as(u64p),
        )
        return a

    def forward(self, coeffs: np.ndarray) -> np.ndarray:
        """Residue coefficients (..., N) -> SEAL-ordered NTT values (..., N)."""
        if _KERNEL is None:
            return self.forward_numpy(coeffs)
        a = np.asarray(coeffs, dtype=U64).reshape(-1, self.n)
        if self._merged:
            a = np.array(a, dtype=U64, order="C", copy=True)
            _KERNEL.helix_ntt_ln_forward(_ptr(a), a.shape[0], self.n, self.q, _ptr(self._ln[0]), _ptr(self._ln[1]))
            return a.reshape(np.shape(coeffs))
        return self._native_call(_KERNEL.helix_ntt_forward, a, self._pre, self.perm, self._tw).reshape(np.shape(coeffs))

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """SEAL-ordered NTT values (..., N) -> residue coefficients (..., N)."""
        if _KERNEL is None:
            return self.inverse_numpy(values)
        a = np.asarray(values, dtype=U64).reshape(-1, self.n)
        if self._merged:
            a = np.array(a, dtype=U64, order="C", copy=True)
            _KERNEL.helix_ntt_ln_inverse(
                _ptr(a), a.shape[0], self.n, self.q, _ptr(self._ln[2]), _ptr(self._ln[3]), self._ln[4], self._ln[5]
            )
            return a.reshape(np.shape(values))
        return self._native_call(_KERNEL.helix_ntt_inverse, a, self._post, self.inv_perm, self._tw_inv).reshape(
            np.shape(values)
        )

    def forward_numpy(self, coeffs: np.ndarray) -> np.ndarray:
        """Pure-numpy forward transform (the fallback, and the reference the kernel is tested against)."""
        shape = coeffs.shape
        a = np.asarray(coeffs, dtype=U64).reshape(-1, self.n)
        a = mulmod(a, np.broadcast_to(self.psi_pows, a.shape), self.q)
        a = self._cyclic(a, self.stage_twiddles)
        return a[:, self.perm].reshape(shape)

    def inverse_numpy(self, values: np.ndarray) -> np.ndarray:
        shape = values.shape
        a = np.asarray(values, dtype=U64).reshape(-1, self.n)
        a = a[:, self.inv_perm]
        a = self._cyclic(a, self.stage_twiddles_inv)
        a = mulmod(a, np.broadcast_to(self.inv_scale, a.shape), self.q)
        return a.reshape(shape)
