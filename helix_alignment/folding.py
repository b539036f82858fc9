"""The provider-held map (paper Algorithm 2): fold an affine map into a linear head.

A head computes logits = x_A @ W + b on the provider's embeddings; the map sends the client's x_B to
x_A = x_B @ M + b_M. Their composition is one linear head on x_B:

    logits = x_B @ (M @ W) + (b_M @ W + b),

so a provider that holds M evaluates the folded head on Enc(x_B) (d_B inputs) and the client never
holds M. Both variants compute the same affine function of x_B, equal up to float rounding.
"""

from __future__ import annotations

import numpy as np

from .ridge import AffineMap


def fold_into_head(m: AffineMap, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W', b') with x_B @ W' + b' == m.apply(x_B) @ weight + bias; weight is (d_A, k), bias (k,)."""
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != m.target_dim:
        raise ValueError(f"the head takes {w.shape[0] if w.ndim == 2 else '?'} inputs, the map gives {m.target_dim}")
    folded_w: np.ndarray = m.weight @ w
    folded_b: np.ndarray = m.bias @ w + np.asarray(bias, dtype=np.float64)
    return folded_w, folded_b
