"""Output modes against the real provider and a real client agent: a `ranking` head (AG News, four
classes) created by the admin answers each query with its pairwise logit differences times fresh
secret factors, so a client gets the plaintext order and labels but not the magnitudes; feature-major
batches are refused for it; the agent reports rankings and labels, without logits or probabilities.

Plaintext references come from the admin's reference-logits endpoint (a measuring aid outside the
privacy protocol) on exactly the vectors that were encrypted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import assert_api_error, register_seeded

from client_agent.maps import MapStore
from client_agent.provider_client import ProviderClient
from helix_alignment import AffineMap
from helix_datasets import load_split
from helix_embeddings import load_embedder
from helix_he.budget import QUERY_SCALE_BITS, RANKING_FACTOR_BITS
from helix_he.keys import ClientKeys
from helix_he.linear_head import (
    decrypt_ranking_differences,
    encrypt_batch,
    encrypt_queries,
    ranking_from_differences,
    ranking_pairs,
)
from helix_he.packing import LinearHeadLayout
from shared_protocol.framing import FRAME_MEDIA_TYPE, encode_frame
from shared_protocol.messages import (
    ClassifyBatchHeader,
    ClassifyHeader,
    HeadInfo,
    KeyPurpose,
    KeyRegistrationHeader,
    OutputMode,
)

PSET = "ckks-n8192-q200"
HEAD = "ag-news-ranked"
FACTOR_MAX = 2.0**RANKING_FACTOR_BITS
MAX_BYTES = 1 << 20


@pytest.fixture(scope="module")
def ranking_head(provider: Any) -> Iterator[HeadInfo]:
    resp = provider.admin.post(
        "/v1/admin/heads",
        json={
            "name": HEAD,
            "dataset": "ag_news",
            "max_examples": 400,
            "in_distribution_texts": 0,
            "output_mode": "ranking",
        },
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["head"]["output_mode"] == "ranking"
    try:
        yield HeadInfo.model_validate(provider.http.get(f"/v1/heads/{HEAD}").json())
    finally:
        provider.admin.delete(f"/v1/admin/heads/{HEAD}")


@pytest.fixture(scope="module")
def pc(provider: Any) -> Iterator[ProviderClient]:
    with ProviderClient(provider.url, Path(provider.ca), timeout=300, api_key=provider.api_key) as client:
        yield client


@pytest.fixture(scope="module")
def key(pc: ProviderClient) -> tuple[str, ClientKeys]:
    keys = ClientKeys.generate(PSET)
    info = register_seeded(
        pc,
        keys,
        KeyRegistrationHeader(client_name="pytest-output-modes", purpose=KeyPurpose.inference, parameter_set=PSET),
    )
    return info.key_id, keys


def provider_space_queries(head: HeadInfo, count: int, seed: int) -> np.ndarray:
    """Unit vectors, like the provider's normalised embeddings."""
    x = np.random.default_rng(seed).normal(size=(count, head.dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_logits(provider: Any, head_id: str, x: np.ndarray) -> np.ndarray:
    resp = provider.admin.post(f"/v1/admin/heads/{head_id}/reference-logits", json={"embeddings": x.tolist()})
    assert resp.status_code == 200, resp.text
    return np.asarray(resp.json()["logits"])


def pairwise(z: np.ndarray) -> np.ndarray:
    return np.stack([z[:, i] - z[:, j] for i, j in ranking_pairs(z.shape[1])], axis=1)


def ranked_replies(pc: ProviderClient, key: tuple[str, ClientKeys], head: HeadInfo, x: np.ndarray) -> np.ndarray:
    key_id, keys = key
    layout = LinearHeadLayout(n=keys.he.n, d=head.dim, k=head.num_classes)
    blobs = encrypt_queries(keys, x, layout)
    header = ClassifyHeader(head_id=head.id, key_id=key_id, num_queries=len(blobs), query_scale_bits=QUERY_SCALE_BITS)
    reply, out, _, _ = pc.classify(header, blobs, max_blob_bytes=MAX_BYTES)
    assert reply.output_mode == OutputMode.ranking and reply.num_classes == head.num_classes
    assert sorted(i for g in reply.class_groups for i in g) == list(range(len(ranking_pairs(head.num_classes))))
    return decrypt_ranking_differences(keys, reply, out, max_bytes=MAX_BYTES)


def test_heads_report_their_output_mode(provider: Any, ranking_head: HeadInfo) -> None:
    assert ranking_head.output_mode == OutputMode.ranking and ranking_head.num_classes == 4
    assert provider.http.get("/v1/heads/sst2").json()["output_mode"] == "logits"  # the default
    listed = {h["id"]: h["output_mode"] for h in provider.http.get("/v1/heads").json()}
    assert listed[HEAD] == "ranking" and listed["sst2"] == "logits"
    admin = {r["head"]["id"]: r["head"]["output_mode"] for r in provider.admin.get("/v1/admin/heads").json()}
    assert admin[HEAD] == "ranking"


def test_an_unknown_output_mode_is_refused(provider: Any) -> None:
    resp = provider.admin.post(
        "/v1/admin/heads", json={"name": "bad-mode", "dataset": "sst2", "max_examples": 20, "output_mode": "scores"}
    )
    assert_api_error(resp, 422, "invalid_request", "output_mode")
    assert provider.http.get("/v1/heads/bad-mode").status_code == 404


def test_ranking_head_gives_the_plaintext_order_and_labels(
    provider: Any, pc: ProviderClient, key: tuple[str, ClientKeys], ranking_head: HeadInfo
) -> None:
    x = provider_space_queries(ranking_head, 24, seed=1)
    got = ranked_replies(pc, key, ranking_head, x)
    z = reference_logits(provider, HEAD, x)
    ratio = got / pairwise(z)
    assert ratio.min() > 1.0 - 1e-3 and ratio.max() < FACTOR_MAX * (1.0 + 1e-3), "not positive multiples in [1, 2^8)"
    assert np.array_equal(ranking_from_differences(got, 4), np.argsort(-z, axis=1, kind="stable"))
    assert len(set(np.argmax(z, axis=1).tolist())) > 1, "the check should cover more than one label"


def test_ranking_replies_do_not_reveal_logit_magnitudes(
    provider: Any, pc: ProviderClient, key: tuple[str, ClientKeys], ranking_head: HeadInfo
) -> None:
    """Two queries (and one query twice): the ratio of their decrypted differences is the plaintext
    ratio times an unknown r2 / r1 per pair, never the plaintext ratio itself."""
    x1 = provider_space_queries(ranking_head, 1, seed=2)
    x = np.vstack([x1, 0.5 * x1 + 0.5 * provider_space_queries(ranking_head, 1, seed=3), x1])
    got = ranked_replies(pc, key, ranking_head, x)
    want = pairwise(reference_logits(provider, HEAD, x))
    observed, plaintext = got[1] / got[0], want[1] / want[0]
    assert np.all(np.abs(observed / plaintext - 1.0) > 1e-4), (observed, plaintext)
    assert np.all(np.abs(got[2] / got[0] - 1.0) > 1e-4), "the same query was answered with the same factors"
    assert np.array_equal(np.sign(got), np.sign(want))  # while the order is exact


def test_batches_are_refused_for_a_ranking_head(
    provider: Any, key: tuple[str, ClientKeys], ranking_head: HeadInfo
) -> None:
    key_id, keys = key
    x = provider_space_queries(ranking_head, 3, seed=4)
    features = encrypt_batch(keys, x, LinearHeadLayout(n=keys.he.n, d=ranking_head.dim, k=ranking_head.num_classes))
    header = ClassifyBatchHeader(
        head_id=HEAD, key_id=key_id, num_queries=3, dim=ranking_head.dim, query_scale_bits=QUERY_SCALE_BITS
    )
    resp = provider.http.post(
        "/v1/classify/batch", content=encode_frame(header, features), headers={"content-type": FRAME_MEDIA_TYPE}
    )
    assert_api_error(resp, 422, "output_mode_unsupported", HEAD, "ranking", "/v1/classify")


# ----------------------------------------------------------------------------- through the client agent


@pytest.fixture(scope="module")
def ranking_agent(client_agent_factory: Any) -> Iterator[Any]:
    agent = client_agent_factory("client-agent-ranking", HELIX_CLIENT_CLIENT_NAME="pytest-ranking-agent")
    try:
        yield agent
    finally:
        agent.close()


def test_agent_reports_rankings_and_labels_of_a_ranking_head(
    provider: Any, ranking_agent: Any, ranking_head: HeadInfo, datasets_dir: Path
) -> None:
    """A map saved into the agent's store (any affine map will do: the check is the agent against
    plaintext on the same mapped vectors). 400 texts: as many as would go feature-major for a logits
    head, which a ranking head must never be sent."""
    wordllama = load_embedder("wordllama")
    texts = load_split(datasets_dir, "ag_news", "test", limit=400, seed=9).texts
    assert len(texts) >= ranking_head.dim
    x = wordllama.embed(texts).astype(np.float64)
    rng = np.random.default_rng(5)
    weight = rng.normal(size=(wordllama.dim, ranking_head.dim))
    weight /= np.median(np.linalg.norm(x @ weight, axis=1))  # mapped vectors of about unit norm, as aligned ones
    affine = AffineMap(weight, rng.normal(size=ranking_head.dim) / (8 * np.sqrt(ranking_head.dim)))
    stored = MapStore(Path(ranking_agent.data_dir) / "maps").save(
        {
            "provider_url": provider.url,
            "head_id": HEAD,
            "corpus_id": "wiki",
            "corpus_sha256": "0" * 64,
            "client_model_id": wordllama.model_id,
            "provider_model_id": "p",
            "parameter_set": PSET,
            "ridge_lambda": 1e-4,
            "num_samples": 432,
            "include_head_texts": False,
            "created_at": datetime.now(UTC).isoformat(),
            "alignment_seconds": 0.0,
            "bytes_sent": 0,
            "bytes_received": 0,
        },
        affine,
    )
    resp = ranking_agent.http.post(
        "/v1/classify", json={"texts": texts, "head_id": HEAD, "map_id": stored.meta.map_id}, timeout=600
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["output_mode"] == "ranking"
    z = reference_logits(provider, HEAD, affine.apply(x))
    names = ranking_head.class_names
    for result, row in zip(body["results"], z, strict=True):
        assert result["logits"] is None and result["probabilities"] is None
        assert result["ranking"] == [names[i] for i in np.argsort(-row, kind="stable")]
        assert result["label"] == result["ranking"][0] == names[int(np.argmax(row))]
    assert body["bytes_sent"] > len(texts) * 65_000, "every text went up as a query ciphertext of its own"
