/* Negacyclic NTT kernels for HELIX (called through ctypes; no Python C-API needed).
 * Why C: numpy has no 128-bit multiply, so an exact mod-q product of two 60-bit residues costs
 * ~100x more in numpy than here. Tables (powers, twiddles, permutations) are computed in Python
 * (shared_protocol.modmath) so this file only runs the butterflies. */
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
