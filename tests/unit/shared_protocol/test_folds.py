"""The fixed validation partition both parties derive, and the disclosure guard."""

from __future__ import annotations

import numpy as np
import pytest

from shared_protocol.folds import MIN_SAMPLES_PER_REVEALED_VALUE, fold_disclosure_error, fold_rows


def test_folds_partition_every_sample_once_and_head_texts_never_move_corpus_samples() -> None:
    with_heads = fold_rows(1003, 64, 5)
    alone = fold_rows(1003, 0, 5)
    assert np.array_equal(np.sort(np.concatenate(with_heads)), np.arange(1067))
    assert max(len(r) for r in with_heads) - min(len(r) for r in with_heads) <= 2
    for a, b in zip(with_heads, alone, strict=False):
        assert np.array_equal(a[a < 1003], b)  # the same corpus samples with or without head texts
        assert np.all(np.diff(a) > 0)


def test_fewer_than_two_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="two folds"):
        fold_rows(100, 0, 1)


def test_disclosure_guard_names_the_numbers() -> None:
    d, k = 384, 5
    need = MIN_SAMPLES_PER_REVEALED_VALUE * k * (d + 1)
    assert fold_disclosure_error(need, d, k) is None
    msg = fold_disclosure_error(need - 1, d, k)
    assert msg is not None and str(need) in msg and "384" in msg
