"""A head with given weights (POST /v1/admin/heads/weights): stored as given, served like a trained head,
and refused with clear 4xx codes when it does not fit the provider's encoder."""

from __future__ import annotations

from typing import Any

import numpy as np
from helix_it_helpers import assert_api_error

MINILM_DIM = 384


def test_given_weights_are_served_exactly(provider: Any, provider_encoder: Any) -> None:
    rng = np.random.default_rng(7)
    w, b = rng.normal(size=(MINILM_DIM, 3)), rng.normal(size=3)
    body = {
        "name": "given-3",
        "task": "given weights",
        "class_names": ["x", "y", "z"],
        "weight": w.tolist(),
        "bias": b.tolist(),
        "texts": ["a published text", "another one"],
    }
    resp = provider.admin.post("/v1/admin/heads/weights", json=body)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["head"]["dim"] == MINILM_DIM and report["head"]["class_names"] == ["x", "y", "z"]
    assert report["train_examples"] == 0
    try:
        texts = provider.http.get("/v1/heads/given-3/texts").json()["texts"]
        assert texts == body["texts"]
        x = provider_encoder.embed(texts).astype(np.float64)
        resp = provider.admin.post("/v1/admin/heads/given-3/reference-logits", json={"embeddings": x.tolist()})
        assert resp.status_code == 200, resp.text
        np.testing.assert_allclose(resp.json()["logits"], x @ w + b, rtol=1e-12, atol=1e-12)
        assert_api_error(provider.admin.post("/v1/admin/heads/weights", json=body), 409, "head_exists")
    finally:
        assert provider.admin.delete("/v1/admin/heads/given-3").status_code == 204


def test_weights_that_do_not_fit_are_refused(provider: Any) -> None:
    good = {"name": "given-bad", "class_names": ["a", "b"], "weight": [[0.1, -0.1]] * MINILM_DIM}
    post = provider.admin.post
    assert_api_error(
        post("/v1/admin/heads/weights", json={**good, "weight": [[0.1, -0.1]] * 10}), 422, "dimension_mismatch"
    )
    assert_api_error(
        post("/v1/admin/heads/weights", json={**good, "weight": [[0.1]] * MINILM_DIM}), 422, "invalid_head"
    )
    assert_api_error(post("/v1/admin/heads/weights", json={**good, "bias": [0.0, 1.0, 2.0]}), 422, "invalid_head")
    assert_api_error(post("/v1/admin/heads/weights", json={**good, "class_names": ["a", "a"]}), 422, "invalid_head")
    assert_api_error(post("/v1/admin/heads/weights", json={**good, "weight": []}), 422, "invalid_head")
    resp = post("/v1/admin/heads/weights", json={**good, "name": "../etc"})
    assert resp.status_code == 422
    resp = provider.http.post("/v1/admin/heads/weights", json=good)  # no admin token
    assert resp.status_code in (401, 403)
    assert provider.http.get("/v1/heads/given-bad").status_code == 404
