"""How an alignment computation is split over workers and how the pieces' results are put back."""

from __future__ import annotations

import pytest

from provider_server.services.alignment_compute import fold_major, piece_bounds


@pytest.mark.parametrize(("groups", "workers"), [(1, 1), (1, 4), (5, 2), (12, 4), (3, 8), (7, 0)])
def test_pieces_cover_every_group_once_in_order(groups: int, workers: int) -> None:
    bounds = piece_bounds(groups, workers)
    assert len(bounds) == min(groups, max(1, workers))
    assert bounds[0][0] == 0 and bounds[-1][1] == groups
    assert all(lo < hi for lo, hi in bounds)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_fold_major_puts_each_folds_groups_together() -> None:
    # Two pieces (groups 0-1 and group 2), three folds: each piece returns its groups fold by fold.
    pieces = [[b"f0g0", b"f0g1", b"f1g0", b"f1g1", b"f2g0", b"f2g1"], [b"f0g2", b"f1g2", b"f2g2"]]
    assert fold_major(pieces, 3) == [b"f0g0", b"f0g1", b"f0g2", b"f1g0", b"f1g1", b"f1g2", b"f2g0", b"f2g1", b"f2g2"]


def test_without_folds_pieces_are_concatenated() -> None:
    assert fold_major([[b"g0", b"g1"], [b"g2"]], 1) == [b"g0", b"g1", b"g2"]
