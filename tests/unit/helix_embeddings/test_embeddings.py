"""Tests for helix_embeddings against the real offline models (no mocks).

MiniLM is loaded once per process (the registry caches instances), so the whole
file costs roughly one sentence-transformers import (~5 s) plus small encodes.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from helix_embeddings import CachedEmbedder, Embedder, known_backends, load_embedder
from helix_embeddings.specs import parse_spec
from helix_embeddings.wordllama_backend import WordLlamaEmbedder

SENTENCES = [
    "The cat sat on the mat.",
    "Stock markets fell sharply on Monday.",
    "I loved this movie, the acting was superb.",
    "",
    "Ünïcödé text with émojis 🎉 works too.",
]


class CountingWordLlama(WordLlamaEmbedder):
    """A real WordLlama embedder that records how many texts it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str], batch_size: int | None = None, progress: bool = False) -> np.ndarray:
        self.calls.append(len(texts))
        return super().embed(texts, batch_size=batch_size, progress=progress)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder("minilm")


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    return load_embedder("wordllama")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- shape, dtype, identity -------------------------------------------------------------


@pytest.mark.parametrize(("fixture", "dim"), [("minilm", 384), ("wordllama", 256)])
def test_shape_dtype_and_protocol(request: pytest.FixtureRequest, fixture: str, dim: int) -> None:
    emb = request.getfixturevalue(fixture)
    assert isinstance(emb, Embedder)
    assert emb.dim == dim
    out = emb.embed(SENTENCES)
    assert out.shape == (len(SENTENCES), dim)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    assert np.isfinite(out).all()
    empty = emb.embed([])
    assert empty.shape == (0, dim) and empty.dtype == np.float32


@pytest.mark.parametrize("fixture", ["minilm", "wordllama"])
def test_deterministic_and_batch_independent(request: pytest.FixtureRequest, fixture: str) -> None:
    emb = request.getfixturevalue(fixture)
    a = emb.embed(SENTENCES)
    b = emb.embed(SENTENCES, batch_size=2)
    np.testing.assert_array_equal(a, emb.embed(SENTENCES))
    # Padding differs between batch sizes, so allow float noise only.
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(emb.embed(SENTENCES[1:2])[0], a[1], atol=1e-5)


def test_model_ids(minilm: Embedder, wordllama: Embedder) -> None:
    assert minilm.model_id == "sentence-transformers:all-MiniLM-L6-v2"
    assert wordllama.model_id == "wordllama:l2_supercat-256"
    assert load_embedder("wordllama?dim=128").model_id == "wordllama:l2_supercat-128"
    assert load_embedder("wordllama?normalize=true").model_id == "wordllama:l2_supercat-256?normalize=true"


def test_normalisation_follows_backend_convention(minilm: Embedder, wordllama: Embedder) -> None:
    texts = SENTENCES[:3]
    # MiniLM's own pipeline ends in a Normalize module; WordLlama's default does not normalise.
    np.testing.assert_allclose(np.linalg.norm(minilm.embed(texts), axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(wordllama.embed(texts), axis=1), 1.0, atol=1e-3)
    normed = load_embedder("wordllama?normalize=true").embed(texts)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    # An empty text has no tokens: WordLlama gives the zero vector, which must not become NaN.
    empty = load_embedder("wordllama?normalize=true").embed([""])
    np.testing.assert_array_equal(empty, np.zeros((1, 256), dtype=np.float32))


def test_aliases_share_instances(minilm: Embedder, wordllama: Embedder) -> None:
    assert load_embedder("sentence-transformers:all-MiniLM-L6-v2") is minilm
    assert load_embedder("wordllama:l2_supercat") is wordllama


def test_wordllama_truncated_dim_is_prefix(wordllama: Embedder) -> None:
    small = load_embedder("wordllama:l2_supercat?dim=64")
    assert small.dim == 64
    np.testing.assert_allclose(small.embed(SENTENCES), wordllama.embed(SENTENCES)[:, :64], atol=1e-6)


def test_semantic_sanity_minilm(minilm: Embedder) -> None:
    a, b, c = minilm.embed(
        [
            "A man is playing a guitar on stage.",
            "Someone performs music with a guitar in front of an audience.",
            "The quarterly tax report is due next week.",
        ]
    )
    assert cosine(a, b) > cosine(a, c) + 0.3


def test_local_directory_loads_offline_with_content_id(
    minilm: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helix_embeddings.sentence_transformers_backend import bundled_minilm_dir

    copy = tmp_path / "my-minilm"
    shutil.copytree(bundled_minilm_dir(), copy)

    attempts: list[object] = []

    def no_network(self: socket.socket, address: object) -> None:
        attempts.append(address)  # recorded, since libraries may swallow the error below
        raise OSError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    local = load_embedder(f"sentence-transformers:{copy}")
    assert attempts == []
    assert local.model_id.startswith("sentence-transformers:my-minilm@sha256:")
    assert local.dim == 384
    np.testing.assert_allclose(local.embed(SENTENCES), minilm.embed(SENTENCES), atol=1e-6)
    # The bundled directory itself resolves to the canonical name.
    assert load_embedder(f"sentence-transformers:{bundled_minilm_dir()}").model_id == minilm.model_id


# --- cache -------------------------------------------------------------------------------


def test_cache_hit_avoids_reembedding(tmp_path: Path) -> None:
    inner = CountingWordLlama()
    cached = CachedEmbedder(inner, tmp_path)
    assert (cached.model_id, cached.dim) == (inner.model_id, inner.dim)

    first = cached.embed(SENTENCES)
    assert inner.calls == [len(SENTENCES)]
    second = cached.embed(SENTENCES)
    assert inner.calls == [len(SENTENCES)]  # no new call
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, inner.embed(SENTENCES))
    assert (cached.hits, cached.misses) == (len(SENTENCES), len(SENTENCES))


def test_cache_embeds_only_missing_unique_texts(tmp_path: Path) -> None:
    inner = CountingWordLlama()
    cached = CachedEmbedder(inner, tmp_path)
    cached.embed(SENTENCES[:2])
    out = cached.embed([SENTENCES[0], "new one", SENTENCES[1], "new one", "another new"])
    assert inner.calls == [2, 2]
    assert out.shape == (5, 256)
    np.testing.assert_array_equal(out[1], out[3])
    assert cached.embed([]).shape == (0, 256)
    assert inner.calls == [2, 2]


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    first = CachedEmbedder(CountingWordLlama(), tmp_path).embed(SENTENCES)
    inner = CountingWordLlama()
    again = CachedEmbedder(inner, tmp_path).embed(SENTENCES)
    assert inner.calls == []
    np.testing.assert_array_equal(first, again)


def test_cache_separates_models_and_ignores_corrupt_rows(tmp_path: Path) -> None:
    inner = CountingWordLlama()
    cached = CachedEmbedder(inner, tmp_path)
    cached.embed(SENTENCES[:1])
    other = CachedEmbedder(load_embedder("wordllama?dim=128"), tmp_path)
    assert other.embed(SENTENCES[:1]).shape == (1, 128)
    assert other.misses == 1
    assert cached.store.count() == 2

    with sqlite3.connect(cached.store.path) as conn:
        conn.execute("UPDATE embeddings SET vector = x'00' WHERE model_id = ?", (inner.model_id,))
    fixed = cached.embed(SENTENCES[:1])
    assert inner.calls == [1, 1]  # the truncated row was re-embedded, not returned
    np.testing.assert_array_equal(fixed, inner.embed(SENTENCES[:1]))


def test_cache_concurrent_writers_same_dir(wordllama: Embedder, tmp_path: Path) -> None:
    """Several writers on one directory (threads here; SQLite locking is the same across processes)."""
    texts = [f"sentence {i}" for i in range(300)]
    expected = wordllama.embed(texts)

    def work(offset: int) -> np.ndarray:
        order = texts[offset:] + texts[:offset]
        out = CachedEmbedder(wordllama, tmp_path).embed(order, progress=offset == 0)
        return np.roll(out, offset, axis=0)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, [0, 75, 150, 225]))
    for out in results:
        np.testing.assert_allclose(out, expected, atol=1e-6)
    assert CachedEmbedder(wordllama, tmp_path).store.count(wordllama.model_id) == len(texts)


def test_load_embedder_with_cache_dir(minilm: Embedder, tmp_path: Path) -> None:
    cached = load_embedder("minilm", cache_dir=tmp_path)
    assert isinstance(cached, CachedEmbedder)
    assert (cached.model_id, cached.dim) == (minilm.model_id, 384)
    a = cached.embed(SENTENCES)
    b = load_embedder("minilm", cache_dir=tmp_path).embed(SENTENCES)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, minilm.embed(SENTENCES))


# --- errors ------------------------------------------------------------------------------


def test_unknown_backend_lists_known() -> None:
    with pytest.raises(ValueError, match="nosuchbackend") as info:
        load_embedder("nosuchbackend:some-model")
    for name in known_backends():
        assert name in str(info.value)
    for name in ("sentence-transformers", "wordllama", "causal-lm", "spacy", "glove", "openai", "cohere", "gemini"):
        assert name in known_backends()


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nocolon",
        "wordllama:l2_supercat?dims=128",
        "wordllama?dim=100",
        "wordllama?dim=1024",
        "wordllama:l9_nope",
        "minilm?normalize=maybe",
        "wordllama?dim=1&dim=2",
    ],
)
def test_bad_specs_raise_value_error(spec: str) -> None:
    with pytest.raises(ValueError):
        load_embedder(spec)


def test_unavailable_sentence_transformer_raises(minilm: Embedder) -> None:
    with pytest.raises(ValueError, match="offline"):
        load_embedder("sentence-transformers:definitely-not-a-local-model-xyz")


def test_bare_string_rejected(wordllama: Embedder) -> None:
    with pytest.raises(TypeError):
        wordllama.embed("a single string")


def test_spec_parsing() -> None:
    spec = parse_spec("wordllama?normalize=1&dim=128")
    assert (spec.backend, spec.name) == ("wordllama", "l2_supercat")
    assert spec.option_dict == {"dim": "128", "normalize": "1"}
    assert parse_spec("sentence-transformers:/abs/path").name == "/abs/path"
    assert parse_spec("Wordllama:l2_supercat").backend == "wordllama"


def test_torch_threads_env_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    from helix_embeddings.sentence_transformers_backend import THREADS_ENV, configure_torch_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert configure_torch_threads() is None
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ValueError, match=THREADS_ENV):
        configure_torch_threads()


# --- benchmark (opt-in: pytest -m slow -s) -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["minilm", "wordllama", "spacy", "glove", "smollm2", "gemma3"])
def test_benchmark_1000_short_sentences(spec: str) -> None:
    try:
        emb = load_embedder(spec)
    except ImportError as exc:  # a model package that needs a manual install (see docs/embedders.md)
        pytest.skip(str(exc))
    texts = [f"Short sentence number {i} talks about topic {i % 37} in a few words." for i in range(1000)]
    emb.embed(texts[:32])  # warm-up
    start = time.perf_counter()
    out = emb.embed(texts)
    elapsed = time.perf_counter() - start
    print(f"\n{emb.model_id}: 1000 sentences in {elapsed:.3f} s ({1000 / elapsed:.0f}/s)")
    assert out.shape == (1000, emb.dim)
