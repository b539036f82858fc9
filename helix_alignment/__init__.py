"""Alignment maths both parties rely on: the ridge affine map and its sufficient statistics."""

from .ridge import AffineMap, SufficientStats, fit_ridge, solve_ridge_from_stats

__all__ = ["AffineMap", "SufficientStats", "fit_ridge", "solve_ridge_from_stats"]
