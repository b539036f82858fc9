"""Streamed statistics equal the batch statistics; MMLU / Alpaca rows, prompts and answer parsing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helix_alignment.methods import solve_method, stats_of
from helix_generation.data import AlpacaRow, MmluQuestion, load_alpaca, load_mmlu, mmlu_prompt
from helix_generation.fit import StatsAccumulator, identity_map, load_map, save_map
from helix_generation.mmlu import first_letter, shots_by_subject


def test_streamed_statistics_match_batch_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = x @ rng.normal(size=(6, 4)) + 0.1 * rng.normal(size=(300, 4)) + 2.0
    acc = StatsAccumulator(6, 4, folds=3)
    for i, start in enumerate(range(0, 300, 25)):  # 12 chunks, dealt to 3 folds in turn
        acc.add(x[start : start + 25], y[start : start + 25], fold=i)
    total = acc.total()
    ref = stats_of(x, y)
    assert total.n == 300 and len(acc.folds()) == 3
    np.testing.assert_allclose(total.xtx, ref.xtx)
    np.testing.assert_allclose(total.xty, ref.xty)
    got, info = acc.solve("ridge_scaled", kappa=1e-3)
    want, _ = solve_method("ridge_scaled", ref, kappa=1e-3)
    np.testing.assert_allclose(got.weight, want.weight, atol=1e-10)
    assert info["pairs"] == 300 and info["method"] == "ridge_scaled"
    cv, cv_info = acc.solve("ridge_cv")
    assert cv_info["folds"] == 3 and np.abs(cv.apply(x) - y).mean() < 0.2


def test_accumulator_rejects_bad_shapes_and_too_few_pairs() -> None:
    acc = StatsAccumulator(3, 2)
    with pytest.raises(ValueError, match="do not fit"):
        acc.add(np.zeros((4, 3)), np.zeros((4, 3)))
    acc.add(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="cannot determine"):
        acc.solve()


def test_map_file_round_trip_without_pickle(tmp_path: Path) -> None:
    m = identity_map(5)
    save_map(tmp_path / "m.npz", m, {"label": "a->a", "pairs": 7})
    back, meta = load_map(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.weight, np.eye(5))
    assert meta == {"label": "a->a", "pairs": 7}


@pytest.mark.parametrize(
    ("text", "letter"),
    [(" B", "B"), (" (C) because", "C"), ("D.", "D"), (" Apple is A", "A"), (" Bob", None), ("", None), ("AB", None)],
)
def test_first_letter(text: str, letter: str | None) -> None:
    assert first_letter(text) == letter


def test_mmlu_prompt_and_shots() -> None:
    q = MmluQuestion("high_school_physics", "2+2?", ("3", "4", "5", "6"), 1)
    assert mmlu_prompt(q) == (
        "The following are multiple choice questions (with answers) about high school physics.\n\n"
        "2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    )
    shot = MmluQuestion("high_school_physics", "1+1?", ("2", "3", "4", "5"), 0)
    assert mmlu_prompt(q, [shot]).count("Answer:") == 2 and "Answer: A\n\n2+2?" in mmlu_prompt(q, [shot])
    assert shots_by_subject([shot, q, shot], 2) == {"high_school_physics": [shot, q]}


def test_alpaca_prompt() -> None:
    row = AlpacaRow("Add.", "2 and 3", "5")
    assert row.prompt == "### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:\n"
    assert row.text == row.prompt + "5"
    assert "### Input" not in AlpacaRow("Hi.", "", "Hello").prompt


def test_loaders_on_the_datasets_folder(datasets_dir: Path) -> None:
    qs = load_mmlu(datasets_dir, "test", 100, seed=0)
    assert len(qs) == 100 and qs == load_mmlu(datasets_dir, "test", 100, seed=0)
    assert qs != load_mmlu(datasets_dir, "test", 100, seed=1)
    assert all(len(q.choices) == 4 and 0 <= q.answer <= 3 for q in qs)
    assert len(load_mmlu(datasets_dir, "dev", None)) == 285
    rows = load_alpaca(datasets_dir, "test", 5, offset=2)
    assert len(rows) == 5 and all(r.instruction for r in rows)
    assert not any(r.input.lower() in {"no input", "<no input>"} for r in load_alpaca(datasets_dir, "train"))
