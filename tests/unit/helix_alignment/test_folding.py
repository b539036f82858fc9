"""Folding a map into a head gives the same logits as mapping first (paper Algorithm 2)."""

from __future__ import annotations

import numpy as np
import pytest

from helix_alignment import AffineMap, fold_into_head


def test_folded_head_equals_map_then_head() -> None:
    rng = np.random.default_rng(3)
    m = AffineMap(rng.normal(size=(12, 20)), rng.normal(size=20))
    w, b = rng.normal(size=(20, 4)), rng.normal(size=4)
    x = rng.normal(size=(50, 12))
    fw, fb = fold_into_head(m, w, b)
    assert fw.shape == (12, 4) and fb.shape == (4,)
    np.testing.assert_allclose(x @ fw + fb, m.apply(x) @ w + b, rtol=1e-12, atol=1e-12)


def test_a_head_of_another_dimension_is_refused() -> None:
    m = AffineMap(np.zeros((3, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="inputs"):
        fold_into_head(m, np.zeros((4, 2)), np.zeros(2))
