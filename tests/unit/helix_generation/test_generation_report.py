"""Result tables and the figure render from saved JSON alone (no model needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helix_generation.report import plot, tables

A, B = "smollm2-135m", "gemma-3-270m"


def result() -> dict[str, Any]:
    row = {
        f"cosine_to_{A}_native": 0.25,
        f"cosine_to_{B}_native": 0.5,
        "target_perplexity_median": 12.0,
        "mean_new_tokens": 40.0,
        "tokens_per_second": 9.5,
        "source_tokens_computed_per_new_token": 1.2,
    }
    return {
        "models": {A: {"dim": 576}, B: {"dim": 640}},
        "tokenizers": {"vocab_jaccard": 0.18, "exact_match_a_to_b": 0.92, "exact_match_b_to_a": 0.95, "texts": 200},
        "agreement": {
            f"{A}->{B}": {
                "agreement": 0.41,
                "agreement_aligned": 0.43,
                "mapped_cosine": 0.8,
                "stitched_top1_aligned": 0.3,
                "target_top1_aligned": 0.4,
            }
        },
        "mmlu": {f"{B} native": {"loglik_accuracy": 0.27, "loglik_prediction_counts": [1, 2, 3, 94]}},
        "alpaca": {"embedder": "minilm", "prompts": 3, f"{A}->{B}": row},
    }


def test_tables_shorten_names_and_show_every_stage() -> None:
    md = tables(result())
    assert "| smollm2 / gemma | 0.180 | 0.920 | 0.950 | 200 |" in md
    assert "| smollm2->gemma | 0.410 | 0.430 | 0.800 | 0.300 / 0.400 |" in md
    assert "| gemma native | 0.27 | 0.00 | 0.00 | 1/2/3/94 |" in md
    assert "| smollm2->gemma | 0.250 | 0.500 | 12.0 | 40.0 | 9.5 | 1.20 |" in md


def test_plot_writes_a_png(tmp_path: Path) -> None:
    plot([result()], tmp_path / "fig.png")
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_direction_rows_and_correlations() -> None:
    from helix_generation.report import correlations, directions

    rows = directions([result()])
    assert rows == [
        {
            "direction": "smollm2->gemma",
            "exact_match": 0.92,
            "jaccard": 0.18,
            "agreement": 0.41,
            "cosine_to_target": 0.5,
        }
    ]
    assert correlations(rows) == {}  # fewer than 3 directions: no r
    more = rows + [dict(rows[0], exact_match=0.5, agreement=0.2), dict(rows[0], exact_match=0.7, agreement=0.3)]
    assert correlations(more)["agreement~exact_match"] > 0.99
