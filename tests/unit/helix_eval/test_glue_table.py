"""The end-to-end table: encrypted client-held and provider-held (folded) maps agree with plaintext,
on a small pair dataset, with the client's embedding time in the latency."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from helix_eval.cli import main

pytest.importorskip("wordllama")

WORDS = {0: ["goal", "team", "match", "coach"], 1: ["pasta", "oven", "sauce", "bread"]}


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "text": " ".join(rng.choice(WORDS[i % 2]) for _ in range(6)),
            "text_pair": "and " + rng.choice(WORDS[i % 2]),
            "label": i % 2,
        }
        for i in range(n)
    ]


def test_glue_rows_agree_across_variants(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    (root / "pairs").mkdir(parents=True)
    for name, n, seed in (("train.jsonl", 80, 0), ("test.jsonl", 40, 1)):
        (root / "pairs" / name).write_text("".join(json.dumps(r) + "\n" for r in _rows(n, seed)))
    (root / "wiki").mkdir()
    rng = random.Random(3)
    words = [w for ws in WORDS.values() for w in ws]
    (root / "wiki" / "passages.jsonl").write_text(
        "".join(json.dumps({"text": " ".join(rng.choice(words) for _ in range(8))}) + "\n" for _ in range(100))
    )
    out = tmp_path / "glue.json"
    args = ["glue", "--pair", "wordllama", "glove", "--datasets", str(root / "pairs"), "--public", str(root / "wiki")]
    args += ["--k", "16", "--encrypted-examples", "20", "--latency-queries", "3", "--public-size", "100"]
    assert main([*args, "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--quiet"]) == 0
    (row,) = json.loads(out.read_text())
    acc = row["accuracy_on_encrypted_examples"]
    assert acc["client_held"] == acc["provider_held"] == acc["plaintext_mapped"]
    assert max(row["max_abs_logit_error"].values()) < 1e-3
    assert row["dims"] == {"client_held": 256, "provider_held": 50}
    lat = row["latency_ms"]["provider_held"]
    assert lat["total"]["p50"] >= lat["embed"]["p50"] > 0 and "map" in row["latency_ms"]["client_held"]
