/* Negacyclic NTT kernels for HELIX (called through ctypes; no Python C-API needed).
 * Why C: numpy has no 128-bit multiply, so an exact mod-q product of two 60-bit residues costs
 * ~100x more in numpy than here. Tables (powers, twiddles, permutations) are computed in Python
 * (helix_he.modmath) so this file only runs the butterflies. */
#include <stdint.h>
#include <stddef.h>

typedef unsigned __int128 u128;

/* a * w mod q for a constant w with precomputed w_shoup = floor(w * 2^64 / q) (Shoup 2007):
 * one high multiply instead of a 128-bit division. Needs q < 2^63 and a, w < q. */
static inline uint64_t mulmod_shoup(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q) {
    uint64_t hi = (uint64_t)(((u128)a * w_shoup) >> 64);
    uint64_t r = a * w - hi * q;
    return r >= q ? r - q : r;
}

/* In-place cyclic NTT of `batch` rows of length n (row-major), input bit-reversal then
 * radix-2 DIT; twiddles holds, stage after stage, m twiddles for block half-size m = 1,2,4,... */
static void cyclic(uint64_t *a, size_t n, uint64_t q, const uint64_t *twiddles,
                   const uint64_t *twiddles_shoup, const int64_t *bitrev, uint64_t *tmp) {
    for (size_t i = 0; i < n; i++) tmp[i] = a[bitrev[i]];
    for (size_t i = 0; i < n; i++) a[i] = tmp[i];
    const uint64_t *tw = twiddles;
    const uint64_t *tws = twiddles_shoup;
    for (size_t m = 1; m < n; m <<= 1) {
        for (size_t start = 0; start < n; start += 2 * m) {
            for (size_t j = 0; j < m; j++) {
                uint64_t u = a[start + j];
                uint64_t v = mulmod_shoup(a[start + j + m], tw[j], tws[j], q);
                uint64_t s = u + v;
                a[start + j] = s >= q ? s - q : s;
                a[start + j + m] = u >= v ? u - v : u + q - v;
            }
        }
        tw += m;
        tws += m;
    }
}

/* forward: out[i] = (cyclic(a * pre))[perm[i]]; inverse: a' = a[inv_perm]; cyclic; times post. */
void helix_ntt_forward(uint64_t *a, size_t batch, size_t n, uint64_t q, const uint64_t *pre,
                       const uint64_t *pre_shoup, const uint64_t *twiddles,
                       const uint64_t *twiddles_shoup, const int64_t *bitrev, const int64_t *perm,
                       uint64_t *tmp) {
    for (size_t r = 0; r < batch; r++) {
        uint64_t *row = a + r * n;
        for (size_t i = 0; i < n; i++) row[i] = mulmod_shoup(row[i], pre[i], pre_shoup[i], q);
        cyclic(row, n, q, twiddles, twiddles_shoup, bitrev, tmp);
        for (size_t i = 0; i < n; i++) tmp[i] = row[perm[i]];
        for (size_t i = 0; i < n; i++) row[i] = tmp[i];
    }
}

void helix_ntt_inverse(uint64_t *a, size_t batch, size_t n, uint64_t q, const uint64_t *post,
                       const uint64_t *post_shoup, const uint64_t *twiddles,
                       const uint64_t *twiddles_shoup, const int64_t *bitrev,
                       const int64_t *inv_perm, uint64_t *tmp) {
    for (size_t r = 0; r < batch; r++) {
        uint64_t *row = a + r * n;
        for (size_t i = 0; i < n; i++) tmp[i] = row[inv_perm[i]];
        for (size_t i = 0; i < n; i++) row[i] = tmp[i];
        cyclic(row, n, q, twiddles, twiddles_shoup, bitrev, tmp);
        for (size_t i = 0; i < n; i++) row[i] = mulmod_shoup(row[i], post[i], post_shoup[i], q);
    }
}

/* out[i] = a[i] * b[i] mod q for arbitrary residues (one 128-bit product and remainder each). */
void helix_mulmod(const uint64_t *a, const uint64_t *b, size_t count, uint64_t q, uint64_t *out) {
    for (size_t i = 0; i < count; i++) out[i] = (uint64_t)(((u128)a[i] * b[i]) % q);
}

/* w_shoup[i] = floor(w[i] * 2^64 / q): precomputed once for an operand reused by many products
 * (head weights, public and secret keys), so each later product is one high multiply. */
void helix_shoup_table(const uint64_t *w, size_t count, uint64_t q, uint64_t *out) {
    for (size_t i = 0; i < count; i++) out[i] = (uint64_t)(((u128)w[i] << 64) / q);
}

/* out[r*n + i] = a[r*n + i] * w[i] mod q for `rows` rows against one fixed operand w. */
void helix_mulmod_fixed(const uint64_t *a, size_t rows, size_t n, const uint64_t *w, const uint64_t *w_shoup,
                        uint64_t q, uint64_t *out) {
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < n; i++) out[r * n + i] = mulmod_shoup(a[r * n + i], w[i], w_shoup[i], q);
}

/* out[j] = sum_i v[i] * rows[j*n + i] mod q: single coefficients of an inverse NTT (rows from
 * NegacyclicNTT.coefficient_rows), when only a few coefficients are needed (reply outputs). */
void helix_dot_rows(const uint64_t *v, const uint64_t *rows, size_t nrows, size_t n, uint64_t q, uint64_t *out) {
    for (size_t j = 0; j < nrows; j++) {
        const uint64_t *row = rows + j * n;
        u128 acc = 0;
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++) {
            acc += (u128)v[i] * row[i];
            if ((i & 127) == 127) {
                total = (uint64_t)(((u128)total + acc % q) % q);
                acc = 0;
            }
        }
        out[j] = (uint64_t)(((u128)total + acc % q) % q);
    }
}

/* Merged negacyclic NTT (Longa-Naehrig 2016): natural-order coefficients in, values at
 * psi^(2 bitrev(i) + 1) out, which is exactly SEAL's NTT order, so no permutation passes;
 * psi_rev[k] = psi^bitrev(k). About 3x faster than the generic kernel above. */
void helix_ntt_ln_forward(uint64_t *a, size_t batch, size_t n, uint64_t q, const uint64_t *psi_rev,
                          const uint64_t *psi_rev_shoup) {
    for (size_t r = 0; r < batch; r++) {
        uint64_t *x = a + r * n;
        size_t t = n;
        for (size_t m = 1; m < n; m <<= 1) {
            t >>= 1;
            for (size_t i = 0; i < m; i++) {
                const uint64_t s = psi_rev[m + i], ss = psi_rev_shoup[m + i];
                uint64_t *lo = x + 2 * i * t, *hi = lo + t;
                for (size_t j = 0; j < t; j++) {
                    uint64_t u = lo[j];
                    uint64_t v = mulmod_shoup(hi[j], s, ss, q);
                    uint64_t sum = u + v;
                    lo[j] = sum >= q ? sum - q : sum;
                    hi[j] = u >= v ? u - v : u + q - v;
                }
            }
        }
    }
}

/* Inverse (Gentleman-Sande), psi_inv_rev[k] = psi^-bitrev(k), then times n^-1. */
void helix_ntt_ln_inverse(uint64_t *a, size_t batch, size_t n, uint64_t q, const uint64_t *psi_inv_rev,
                          const uint64_t *psi_inv_rev_shoup, uint64_t n_inv, uint64_t n_inv_shoup) {
    for (size_t r = 0; r < batch; r++) {
        uint64_t *x = a + r * n;
        size_t t = 1;
        for (size_t m = n; m > 1; m >>= 1) {
            size_t h = m >> 1;
            for (size_t i = 0; i < h; i++) {
                const uint64_t s = psi_inv_rev[h + i], ss = psi_inv_rev_shoup[h + i];
                uint64_t *lo = x + 2 * i * t, *hi = lo + t;
                for (size_t j = 0; j < t; j++) {
                    uint64_t u = lo[j], v = hi[j];
                    uint64_t sum = u + v;
                    lo[j] = sum >= q ? sum - q : sum;
                    hi[j] = mulmod_shoup(u >= v ? u - v : u + q - v, s, ss, q);
                }
            }
            t <<= 1;
        }
        for (size_t i = 0; i < n; i++) x[i] = mulmod_shoup(x[i], n_inv, n_inv_shoup, q);
    }
}

/* out[j*n + t] = sum_i w[j*d + i] * c[i*n + t] mod q for small signed weights |w| < 2^40: the
 * feature-major batch head, k output polynomials as integer combinations of d input polynomials.
 * Positive and negative parts accumulate separately in 128 bits (< 2^101 per product, so up to
 * 2^27 terms) and are reduced once at the end. */
void helix_lincomb(const int64_t *w, size_t k, size_t d, const uint64_t *c, size_t n, uint64_t q, uint64_t *out,
                   uint64_t *scratch) {
    u128 *pos = (u128 *)scratch, *neg = pos + n;
    for (size_t j = 0; j < k; j++) {
        for (size_t t = 0; t < n; t++) { pos[t] = 0; neg[t] = 0; }
        for (size_t i = 0; i < d; i++) {
            int64_t wi = w[j * d + i];
            if (wi == 0) continue;
            const uint64_t *ci = c + i * n;
            if (wi > 0) {
                uint64_t a = (uint64_t)wi;
                for (size_t t = 0; t < n; t++) pos[t] += (u128)a * ci[t];
            } else {
                uint64_t a = (uint64_t)(-wi);
                for (size_t t = 0; t < n; t++) neg[t] += (u128)a * ci[t];
            }
        }
        for (size_t t = 0; t < n; t++) {
            uint64_t p = (uint64_t)(pos[t] % q), m = (uint64_t)(neg[t] % q);
            out[j * n + t] = p >= m ? p - m : p + q - m;
        }
    }
}

/* out = (a + b) mod q for residues below q. */
void helix_addmod(const uint64_t *a, const uint64_t *b, size_t count, uint64_t q, uint64_t *out) {
    for (size_t i = 0; i < count; i++) {
        uint64_t s = a[i] + b[i];
        out[i] = s >= q ? s - q : s;
    }
}

/* out = v mod q for signed values with |v| < q. */
void helix_signed_residues(const int64_t *v, size_t count, uint64_t q, uint64_t *out) {
    for (size_t i = 0; i < count; i++) out[i] = v[i] < 0 ? (uint64_t)(v[i] + (int64_t)q) : (uint64_t)v[i];
}

/* Pack count values (each below 2^bits, 1 <= bits <= 64) little-endian into ceil(count*bits/8) bytes. */
void helix_pack_bits(const uint64_t *v, size_t count, unsigned bits, uint8_t *out) {
    unsigned __int128 acc = 0;
    unsigned filled = 0;
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        acc |= (unsigned __int128)v[i] << filled;
        filled += bits;
        while (filled >= 8) {
            out[o++] = (uint8_t)acc;
            acc >>= 8;
            filled -= 8;
        }
    }
    if (filled) out[o++] = (uint8_t)acc;
}

/* The inverse of helix_pack_bits; returns the bits left over in the last byte (must be zero). */
uint64_t helix_unpack_bits(const uint8_t *in, size_t count, unsigned bits, uint64_t *out) {
    unsigned __int128 acc = 0;
    unsigned filled = 0;
    size_t p = 0;
    uint64_t mask = bits == 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    for (size_t i = 0; i < count; i++) {
        while (filled < bits) {
            acc |= (unsigned __int128)in[p++] << filled;
            filled += 8;
        }
        out[i] = (uint64_t)acc & mask;
        acc >>= bits;
        filled -= bits;
    }
    return (uint64_t)acc;
}

/* out = (a - b) mod q for residues below q. */
void helix_submod(const uint64_t *a, const uint64_t *b, size_t count, uint64_t q, uint64_t *out) {
    for (size_t i = 0; i < count; i++) out[i] = a[i] >= b[i] ? a[i] - b[i] : a[i] + q - b[i];
}
