"""Alignment maths both parties rely on: the ridge affine map and its sufficient statistics."""

from .folding import fold_into_head
from .ridge import AffineMap, SufficientStats, fit_ridge, solve_ridge_from_stats

__all__ = ["AffineMap", "SufficientStats", "fit_ridge", "fold_into_head", "solve_ridge_from_stats"]
