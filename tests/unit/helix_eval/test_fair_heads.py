"""Every head is standardised and tuned on its own training data, so few-shot baselines are not under-fitted."""

from __future__ import annotations

import numpy as np

from helix_eval.retention import C_GRID, head_recipe, stratified_sample, train_head


def _topics(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length embeddings whose class signal is small next to shared variance (like sentence encoders)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 0.15
    labels = np.arange(n) % classes
    x = centres[labels] + rng.normal(size=(n, dim)) * 0.2 + 1.0  # a large common offset, as in real encoders
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_tuned_few_shot_head_beats_the_old_fixed_recipe() -> None:
    x, y = _topics(1300, 14, 256, 0)
    x_te, y_te = x[1000:], y[1000:]
    idx = stratified_sample(y[:1000], 32, seed=0)
    tuned = train_head(x[idx], y[idx], seed=0)
    fixed = train_head(x[idx], y[idx], c=1.0, seed=0)
    assert tuned.c in C_GRID
    assert fixed.c == 1.0
    chance = 1 / 14
    assert tuned.accuracy(x_te, y_te) > 3 * chance
    assert tuned.accuracy(x_te, y_te) >= fixed.accuracy(x_te, y_te) - 0.02


def test_head_on_raw_inputs_equals_its_folded_linear_form() -> None:
    x, y = _topics(400, 3, 32, 1)
    head = train_head(x, y, seed=0)
    w, c = head.linear()
    np.testing.assert_allclose(x @ w.T + c, head.logits(x), atol=1e-9)
    xb, yb = _topics(400, 2, 32, 2)
    binary = train_head(xb, yb, c=0.5, seed=0)
    w, c = binary.linear()
    np.testing.assert_allclose((xb @ w.T + c)[:, 0], binary.logits(xb), atol=1e-9)


def test_a_class_with_one_example_still_trains() -> None:
    x, y = _topics(60, 6, 16, 3)
    idx = np.array([0, 1, 2, 3, 4, 5, 6, 12, 18, 24, 30, 7, 13, 19])  # class 5 has one row
    head = train_head(x[idx], y[idx], seed=0)
    assert head.accuracy(x, y) > 1 / 6


def test_recipe_is_recorded() -> None:
    assert head_recipe(None)["C"] == "cv" and head_recipe(None)["c_grid"] == list(C_GRID)
    assert head_recipe(0.1)["C"] == 0.1 and head_recipe(0.1)["c_grid"] is None


def test_a_numerically_constant_coordinate_does_not_blow_up_the_weights() -> None:
    x, y = _topics(300, 3, 16, 4)
    x[:, 5] = 1e-33 * np.random.default_rng(0).normal(size=len(x))  # zero up to float noise, as in MiniLM
    head = train_head(x, y, seed=0)
    w, _ = head.linear()
    assert np.abs(w).max() < 1e3
    shifted = x.copy()
    shifted[:, 5] = 0.01  # a mapped embedding is not exactly zero there
    assert head.accuracy(shifted, y) == head.accuracy(x, y)
