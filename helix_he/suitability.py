"""Which pinned parameter sets can evaluate a given head exactly.

Why: the sets differ in headroom. The default sets carry |logit| up to ~2^11; the 4096-ring set spends
its bits on a small round trip and carries |logit| < 2^7. A head whose outputs could exceed a set's
headroom would decrypt to wrapped, silently wrong values under it, so the provider announces, per head,
the sets that fit it (ring large enough for its dimension, outputs within headroom for every query
of norm up to a bound the provider states), smallest round trip first, and evaluates under no other.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .budget import RANKING_FACTOR_BITS, head_output_bound, logit_headroom
from .context import he_context
from .packing import LinearHeadLayout
from .params import get_parameter_set
from .rlwe import ReplyCiphertext, SeededCiphertext

#: A ranking head's difference weights are rounded at 2^(weight scale - 8) (its secret factors take 8 bits);
#: below 2^14 the rounding (~||x|| 2^-bits) reorders near-ties often enough to matter, so a ranking head is
#: offered only under sets that keep 2^14 (the default sets; not the 4096-ring set, which has 2^8).
MIN_RANKING_WEIGHT_SCALE_BITS = 14


def round_trip_bytes(parameter_set: str, d: int, k: int) -> int:
    """Bytes of one query and its replies for a head of d inputs and k outputs under the set."""
    he = he_context(parameter_set)
    lvl = he.output_level
    layout = LinearHeadLayout(n=he.n, d=d, k=k)
    bits = he.params.reply_modulus_bits or 0
    replies = sum(ReplyCiphertext.wire_size(lvl.primes[0], he.n, len(g), bits) for g in layout.class_groups())
    return SeededCiphertext.wire_size(lvl.primes, he.n) + replies


def suitable_parameter_sets(
    offered: Iterable[str], weight: np.ndarray, bias: np.ndarray, *, max_query_norm: float, pairwise: bool
) -> list[str]:
    """The offered sets under which the head (W (d, k), b) is evaluated exactly for ||x|| <= max_query_norm,
    smallest round trip first (ties keep the offered order)."""
    weight = np.asarray(weight, dtype=np.float64)
    d, k = weight.shape
    outputs = k * (k - 1) // 2 if pairwise else k
    bound = head_output_bound(weight, bias, max_query_norm, pairwise=pairwise)
    fits = []
    for name in offered:
        params = get_parameter_set(name)
        if d > params.poly_modulus_degree:
            continue
        if pairwise and params.weight_scale_bits - RANKING_FACTOR_BITS < MIN_RANKING_WEIGHT_SCALE_BITS:
            continue
        q = he_context(name).output_level.primes[0]
        if bound <= logit_headroom(q, params.product_scale_bits):
            fits.append(name)
    return sorted(fits, key=lambda name: round_trip_bytes(name, d, max(1, outputs)))
