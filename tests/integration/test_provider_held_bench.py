"""Provider-held against client-held map through the real daemons: accuracy and latency (slow; run with
`-m slow -s`). The numbers in docs/security.md come from this run.

The client embeds with WordLlama (d_B = 256), the provider with MiniLM (d_A = 384). For each dataset a head
offering either holder is trained on 2,000 examples with 64 published texts; both alignments use the
same 1,800 public Wikipedia passages plus those texts and the agent's default map method. Then the
same test queries are classified through the agent with each alignment (accuracy, agreement, largest
logit difference), and single texts are timed (the agent's wall time, its encrypt + round trip +
decrypt part, and the bytes per query). Results go to $HELIX_HELD_BENCH_OUT (JSON) if set."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import align

from helix_datasets import load_split

pytestmark = pytest.mark.slow

CLIENT_EMBEDDER = "wordllama"
DATASETS = ("sst2", "ag_news")
TEST_QUERIES = 300
TIMED_SINGLE_TEXTS = 30
CORPUS = "bench-held-wiki"


def percentiles(values: list[float]) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (50, 95)}


def classify(agent: Any, head_id: str, map_id: str, texts: list[str]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    resp = agent.http.post("/v1/classify", json={"texts": texts, "head_id": head_id, "map_id": map_id})
    wall = time.perf_counter() - t0
    assert resp.status_code == 200, resp.text
    return dict(resp.json()), wall


def test_provider_held_against_client_held(provider: Any, client_agent_factory: Any, datasets_dir: Path) -> None:
    resp = provider.admin.post(
        "/v1/admin/corpora", json={"name": CORPUS, "dataset": "wikipedia", "file": "passages.jsonl", "limit": 1800}
    )
    assert resp.status_code in (201, 409), resp.text
    agent = client_agent_factory("client-agent-held-bench", HELIX_CLIENT_EMBEDDER=CLIENT_EMBEDDER)
    results: dict[str, Any] = {"client_embedder": CLIENT_EMBEDDER, "datasets": {}}
    for dataset in DATASETS:
        head_id = f"bench-held-{dataset.replace('_', '-')}"
        provider.admin.delete(f"/v1/admin/heads/{head_id}")
        head = {
            "name": head_id,
            "dataset": dataset,
            "max_examples": 2000,
            "in_distribution_texts": 64,
            "map_holder": "either",
        }
        assert provider.admin.post("/v1/admin/heads", json=head).status_code == 201
        test = load_split(datasets_dir, dataset, "test", limit=TEST_QUERIES, seed=7)
        truth = [test.class_names[i] for i in test.labels]
        native = provider.admin.post(
            f"/v1/admin/heads/{head_id}/evaluate",
            json={"dataset": dataset, "split": "test", "limit": TEST_QUERIES, "seed": 7},
        ).json()
        row: dict[str, Any] = {"provider_native_accuracy": native["accuracy"], "queries": len(test.texts)}
        labels: dict[str, list[str]] = {}
        logits: dict[str, np.ndarray] = {}
        for holder in ("client", "provider"):
            job = align(agent.http, head_id=head_id, corpus_id=CORPUS, map_holder=holder, deadline_s=1800.0)
            assert job["state"] == "done", job
            record = agent.http.get(f"/v1/maps/{job['map_id']}").json()
            body, _ = classify(agent, head_id, record["map_id"], test.texts)
            labels[holder] = [r["label"] for r in body["results"]]
            logits[holder] = np.asarray([r["logits"] for r in body["results"]])
            walls, he, sent, received = [], [], [], []
            for text in test.texts[:TIMED_SINGLE_TEXTS]:
                one, wall = classify(agent, head_id, record["map_id"], [text])
                walls.append(wall * 1e3)
                he.append(one["he_latency_ms"])
                sent.append(one["bytes_sent"])
                received.append(one["bytes_received"])
            row[holder] = {
                "accuracy": float(np.mean([a == b for a, b in zip(labels[holder], truth, strict=True)])),
                "alignment_seconds": record["alignment_seconds"],
                "alignment_bytes_sent": record["bytes_sent"],
                "alignment_bytes_received": record["bytes_received"],
                "encrypted_input_dim": record["source_dim"] if holder == "provider" else record["target_dim"],
                "single_text_wall_ms": percentiles(walls),
                "single_text_he_ms": percentiles(he),
                "bytes_per_query": {"sent": int(np.median(sent)), "received": int(np.median(received))},
                "ridge_lambda": record["ridge_lambda"],
            }
        row["prediction_agreement"] = float(
            np.mean([a == b for a, b in zip(labels["client"], labels["provider"], strict=True)])
        )
        row["max_abs_logit_difference"] = float(np.max(np.abs(logits["client"] - logits["provider"])))
        results["datasets"][dataset] = row
        provider.admin.delete(f"/v1/admin/heads/{head_id}")
        assert row["prediction_agreement"] >= 0.99, row
    print(json.dumps(results, indent=2))
    out = os.environ.get("HELIX_HELD_BENCH_OUT")
    if out:
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
