"""The noise and scale budget of HELIX's two depth-1 circuits, in one place.

Both circuits run at the last level of the modulus chain: one ~60-bit prime q and no rescale, so
every decrypted value must stay below q/2 ~ 2^59 including noise. The numbers below split those bits
between the client's encoding scale, the provider's plaintext scale and the headroom for sums.

* Inference: query scale 2^26 times weight scale 2^22 leaves 2^11 of headroom for |logit| below
  q/2; the encryption noise (sigma 3.2 at the query scale) and the rounding of W cost ~1e-6 per logit
  (docs/protocol.md has the derivation). The query scale is pinned: the provider accepts no other,
  because a client that scales its queries up shrinks the provider's flooding relative to the output.
  These are the default sets' numbers; each parameter set pins its own (`CKKSParameterSet.
  query_scale_bits`, `weight_scale_bits`): the 47-bit set uses 2^23 x 2^16 (|logit| < 2^7) and switches
  the reply down to a 2^29 modulus, where a logit sits at ~2^21.
* Ranking: each pairwise difference of logits is multiplied by a secret factor r < 2^8 and its
  weights are encoded at 2^(22 - 8), so r times the weight scale never exceeds 2^22 and the headroom
  is that of logits.
* Alignment: outputs must stay below 2^57 and sum n terms |x| * |Y|, so X and Y share
  57 - log2(n) bits of precision (`data_scale_bits`, `y_scale_bits_for`).
"""

from __future__ import annotations

import math
import os

import numpy as np

#: log2 of the client's encoding scale for queries.
QUERY_SCALE_BITS = 26
#: log2 of the provider's scale for head weights (and the bias is added at the product's scale).
HEAD_WEIGHT_SCALE_BITS = 22
#: Ranking mode: log2 of the range [1, 2^bits) of the secret per-difference factors.
RANKING_FACTOR_BITS = 8
#: Ranking mode: log2 of the scale of the difference weights (factor x weight scale <= 2^22).
RANKING_WEIGHT_SCALE_BITS = HEAD_WEIGHT_SCALE_BITS - RANKING_FACTOR_BITS
#: Largest flooding width the provider may configure: +-2^(44-48) in logit units.
MAX_NOISE_FLOODING_BITS = 44
#: A flooding setting of b bits means +-2^(b - 48) in logit units under every parameter set: b bits at the
#: product scale of the default sets (2^26 x 2^22), fewer at a smaller product scale.
FLOODING_REFERENCE_SCALE_BITS = QUERY_SCALE_BITS + HEAD_WEIGHT_SCALE_BITS

#: |Y_int| <= 2^24: with 20-bit limbs a chunk of 512 samples stays below 2^53 in float BLAS.
Y_MAX_BITS = 24
#: |(X^T Y_int)[a, b]| * data scale < 2^57 < q/2 for a 60-bit q, with room for noise.
OUTPUT_BOUND_BITS = 57


def ceil_log2(v: int) -> int:
    return max(0, (max(1, v) - 1).bit_length())


def data_scale_bits(num_samples: int) -> int:
    """log2 of the client's scale for X in an alignment of `num_samples` samples: X gets half of the
    57 - log2(n) bits (+1: its encryption noise is the larger error)."""
    return max(10, min(30, (OUTPUT_BOUND_BITS - ceil_log2(num_samples)) // 2 + 1))


def max_data_scale_bits(num_samples: int) -> int:
    """The largest X scale the provider accepts: it leaves Y at least 16 bits."""
    return max(10, OUTPUT_BOUND_BITS - ceil_log2(num_samples) - 16)


def y_scale_bits_for(y: np.ndarray, data_bits: int) -> int:
    """log2 of the scale for Y so that every output fits the prime: the client sends |x| <= 1, so
    |(X^T Y)[a, b]| <= ||Y[:, b]||_1 exactly; and |Y_int| <= 2^Y_MAX_BITS for the exact float product.
    May be negative for huge Y (a power of two keeps the scaling exact either way)."""
    y = np.asarray(y, dtype=np.float64)
    l1 = float(np.abs(y).sum(axis=0).max()) if y.size else 0.0
    peak = float(np.abs(y).max()) if y.size else 0.0
    if peak == 0.0:
        return Y_MAX_BITS
    by_sum = math.floor(OUTPUT_BOUND_BITS - data_bits - math.log2(l1 + 1.0))
    by_peak = math.floor(Y_MAX_BITS - math.log2(peak))
    return min(by_sum, by_peak)


def flooding_bits_at(product_scale_bits: int, bits: int) -> int:
    """The flooding width in bits at a product scale of 2^product_scale_bits for a setting of `bits`
    (0 or less: off)."""
    if bits <= 0:
        return 0
    return max(0, bits - (FLOODING_REFERENCE_SCALE_BITS - product_scale_bits))


def flooding_noise(size: int, bits: int) -> np.ndarray:
    """Uniform integers in [-2^bits, 2^bits] for noise flooding (0 bits = off)."""
    if bits <= 0:
        return np.zeros(size, dtype=np.int64)
    raw = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) % np.uint64(2 ** (bits + 1) + 1)
    return raw.astype(np.int64) - np.int64(2**bits)


def ranking_factors(size: int) -> np.ndarray:
    """Secret positive factors, log-uniform on [1, 2^RANKING_FACTOR_BITS), from os.urandom.

    Why log-uniform and real-valued: one reply r * delta then places log2|delta| anywhere in a
    window of RANKING_FACTOR_BITS bits with equal likelihood; and real factors (applied before the
    weights are rounded) leave no integer structure a client could use to divide them out of the
    ratio of two replies, as small integer factors would."""
    u = np.frombuffer(os.urandom(8 * size), dtype=np.uint64) >> np.uint64(11)  # 53 uniform bits
    return np.exp2(u.astype(np.float64) / 2.0**53 * RANKING_FACTOR_BITS)


def logit_headroom(q: int, product_scale_bits: int) -> float:
    """The largest |output| a reply under prime q carries exactly at a product scale of 2^bits, less a
    2^-10 margin for the noise and the bias's rounding."""
    return (q // 2) / 2.0**product_scale_bits * (1.0 - 2.0**-10)


def head_output_bound(weight: np.ndarray, bias: np.ndarray, max_query_norm: float, *, pairwise: bool) -> float:
    """max |output| over queries with ||x||_2 <= max_query_norm: R ||W[:, j]|| + |b_j| per logit, or per
    pairwise difference of logits for a ranking head (its secret factors are inside the budget already:
    they scale the weights, not the headroom; `RANKING_WEIGHT_SCALE_BITS`)."""
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    if pairwise:
        i, j = np.triu_indices(w.shape[1], k=1)
        w, b = w[:, i] - w[:, j], b[i] - b[j]
    if w.shape[1] == 0:
        return 0.0
    return float(np.max(max_query_norm * np.linalg.norm(w, axis=0) + np.abs(b)))
