"""Per-fold secure alignment through real daemons: a client agent configured with `ridge_cv` asks
the provider for X_k^T Y_k on the provider's fixed validation folds, chooses the ridge strength on
held-out alignment data, and ends with the same map as the plaintext fit on the same folds; the
provider refuses per-fold results when they would pin down too much of its embeddings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import poll_until

from client_agent.maps import MapStore
from helix_alignment.methods import solve_method, stats_of
from helix_embeddings import load_embedder
from shared_protocol.folds import fold_rows

CLIENT_SPEC = "wordllama:l2_supercat?dim=64"
CORPUS_SIZE = (
    1000  # 1,032 samples with the head's texts: 5 folds reveal 5 * 65 values per column, half of 1,032 allows it
)
DEADLINE_S = 300.0


@pytest.fixture(scope="module")
def cv_corpus(provider: Any) -> Iterator[str]:
    resp = provider.admin.post(
        "/v1/admin/corpora",
        json={"name": "wiki-cv", "dataset": "wikipedia", "file": "passages.jsonl", "limit": CORPUS_SIZE},
    )
    assert resp.status_code == 201, resp.text
    corpus_id = resp.json()["id"]
    yield corpus_id
    provider.admin.delete(f"/v1/admin/corpora/{corpus_id}")


@pytest.fixture(scope="module")
def cv_agent(client_agent_factory: Any) -> Any:
    return client_agent_factory(
        "cv-agent",
        HELIX_CLIENT_EMBEDDER=CLIENT_SPEC,
        HELIX_CLIENT_ALIGNMENT_METHOD="ridge_cv",
        HELIX_CLIENT_CLIENT_NAME="pytest-cv-agent",
    )


def align(agent: Any, corpus_id: str) -> dict[str, Any]:
    resp = agent.http.post("/v1/alignments", json={"head_id": "sst2", "corpus_id": corpus_id})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    return poll_until(
        lambda: agent.http.get(f"/v1/alignments/{job['job_id']}").json(),
        lambda j: j["state"] != "running",
        deadline_s=DEADLINE_S,
        what="alignment job",
    )


def test_provider_advertises_its_folds(provider: Any) -> None:
    assert provider.http.get("/v1/info").json()["limits"]["alignment_validation_folds"] == 5


def test_ridge_cv_map_equals_the_plaintext_fold_selection(
    provider: Any, cv_agent: Any, cv_corpus: str, provider_encoder: Any
) -> None:
    job = align(cv_agent, cv_corpus)
    assert job["state"] == "done", job["error"]
    stored = MapStore(Path(cv_agent.data_dir) / "maps").get(job["map_id"])
    assert stored is not None
    meta = stored.meta
    assert meta.map_method == "ridge_cv" and meta.map_params["folds"] == 5 and meta.num_samples == CORPUS_SIZE + 32

    corpus = provider.http.get(f"/v1/corpora/{cv_corpus}/texts", params={"limit": 5000}).json()["texts"]
    head = provider.http.get("/v1/heads/sst2/texts").json()["texts"]
    texts = corpus + head
    x = load_embedder(CLIENT_SPEC).embed(texts).astype(np.float64)
    y = provider_encoder.embed(texts).astype(np.float64)
    rows = fold_rows(len(corpus), len(head), 5)
    ref, chosen = solve_method("ridge_cv", stats_of(x, y), folds=[stats_of(x[r], y[r]) for r in rows])
    assert meta.map_params["kappa"] == chosen["kappa"], (meta.map_params, chosen["cv_losses"])
    err = float(np.max(np.abs(stored.affine.apply(x) - ref.apply(x))))
    assert err < 1e-4, f"the secure ridge_cv map deviates from the plaintext fit by {err:.3g}"
    # Selection happened on held-out folds: it is not the smallest kappa of the grid, which the
    # in-sample loss would always pick.
    assert chosen["kappa"] > min(chosen["grid"])


def test_per_fold_results_are_refused_when_folds_are_too_small(cv_agent: Any) -> None:
    """The session corpus has 432 samples: 5 folds x 65 values x 2 > 432."""
    job = align(cv_agent, "wiki")
    assert job["state"] == "failed"
    assert "validation_folds_too_small" in job["error"] or "per-fold results need at least 650" in job["error"], job[
        "error"
    ]
