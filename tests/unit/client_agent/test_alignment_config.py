"""The client's map method setting: validated against what the secure protocol computes, recorded per map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from client_agent.alignment_config import AlignmentConfig, choose_method
from client_agent.api_models import AlignmentRequest
from client_agent.maps import MapStore
from client_agent.settings import ClientSettings
from helix_alignment import AffineMap
from helix_alignment.methods import CLIENT_DEFAULT_METHOD, METHODS


def test_default_method_needs_no_provider_disclosure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELIX_CLIENT_ALIGNMENT_METHOD", raising=False)
    s = ClientSettings(_env_file=None)
    assert s.alignment_method == CLIENT_DEFAULT_METHOD and METHODS[s.alignment_method].private


@pytest.mark.parametrize("method", ["cca", "unknown"])
def test_methods_needing_more_than_the_protocol_gives_are_refused(method: str) -> None:
    with pytest.raises(ValidationError, match=method):
        ClientSettings(_env_file=None, alignment_method=method)


@pytest.mark.parametrize("method", ["ridge_cv", "anchored_ridge_cv"])
def test_validation_fold_methods_are_accepted(method: str) -> None:
    """They need per-fold X^T Y, which the provider returns on its fixed folds when asked."""
    assert ClientSettings(_env_file=None, alignment_method=method).alignment_method == method


def test_method_from_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELIX_CLIENT_ALIGNMENT_METHOD", "reduced_rank")
    monkeypatch.setenv("HELIX_CLIENT_ALIGNMENT_RANK", "32")
    s = ClientSettings(_env_file=None)
    assert s.alignment_method == "reduced_rank" and s.map_params() == {"rank": 32}
    assert ClientSettings(_env_file=None, alignment_method="procrustes", alignment_kappa=0.5).map_params() == {}


def test_request_chooses_the_method() -> None:
    settings = ClientSettings(_env_file=None, alignment_method="ridge_scaled", alignment_kappa=0.1)
    assert choose_method(settings, AlignmentRequest(head_id="h", corpus_id="c")) == ("ridge_scaled", {"kappa": 0.1})
    assert choose_method(settings, AlignmentRequest(head_id="h", corpus_id="c", ridge_lambda=0.5))[0] == "ridge"
    chosen = choose_method(settings, AlignmentRequest(head_id="h", corpus_id="c", map_method="procrustes"))
    assert chosen == ("procrustes", {})


def test_alignment_config_from_request_and_settings() -> None:
    """The run's configuration: the request's ids and choices, the agent's settings for the rest."""
    settings = ClientSettings(
        _env_file=None,
        alignment_method="ridge_scaled",
        alignment_kappa=0.1,
        ridge_lambda=0.25,
        client_name="me",
        parameter_set="ckks-n8192-q200",
        alignment_chunk_ciphertexts=7,
    )
    cfg = AlignmentConfig.for_request(settings, AlignmentRequest(head_id="h", corpus_id="c", include_head_texts=False))
    assert (cfg.head_id, cfg.corpus_id, cfg.client_name, cfg.include_head_texts) == ("h", "c", "me", False)
    assert (cfg.ridge_lambda, cfg.parameter_set, cfg.chunk_ciphertexts) == (0.25, "ckks-n8192-q200", 7)
    assert (cfg.map_method, dict(cfg.map_params)) == ("ridge_scaled", {"kappa": 0.1})
    explicit = AlignmentConfig.for_request(settings, AlignmentRequest(head_id="h", corpus_id="c", ridge_lambda=0.5))
    assert (explicit.map_method, explicit.ridge_lambda, dict(explicit.map_params)) == ("ridge", 0.5, {})


def _meta(**extra: object) -> dict[str, object]:
    return {
        "provider_url": "https://p",
        "head_id": "h",
        "corpus_id": "c",
        "corpus_sha256": "0" * 64,
        "client_model_id": "m",
        "provider_model_id": "p",
        "parameter_set": "s",
        "ridge_lambda": 0.3,
        "num_samples": 10,
        "include_head_texts": False,
        "created_at": "2026-01-01T00:00:00+00:00",
        "alignment_seconds": 1.0,
        "bytes_sent": 1,
        "bytes_received": 1,
        **extra,
    }


def test_map_records_its_method_and_old_maps_read_as_ridge(tmp_path: Path) -> None:
    store = MapStore(tmp_path)
    affine = AffineMap(np.eye(3, 2), np.zeros(2))
    stored = store.save(_meta(map_method="ridge_scaled", map_params={"kappa": 0.01, "lambda": 0.3}), affine)
    again = store.get(stored.meta.map_id)
    assert again is not None and again.meta.map_method == "ridge_scaled" and again.meta.map_params["kappa"] == 0.01
    meta_file = tmp_path / stored.meta.map_id / "meta.json"
    old = json.loads(meta_file.read_text())
    del old["map_method"], old["map_params"]
    meta_file.write_text(json.dumps(old))
    legacy = MapStore(tmp_path).get(stored.meta.map_id)  # a map written before methods, read by a new process
    assert legacy is not None and legacy.meta.map_method == "ridge" and legacy.meta.map_params == {}
