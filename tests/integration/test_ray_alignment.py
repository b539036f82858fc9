"""A real alignment with both silos' shard work on Ray: the client agent embeds and encrypts on the
session's Ray cluster, the provider computes its cross-covariance in shards there and adds them in a
tree. The map must equal the one the local path (the session's provider and an agent without Ray)
gets for the same texts: same head and corpus settings, same client embedder; the two results differ
only by CKKS noise, far below the tolerance.

Slow (run with -m slow): a provider of its own and two agents cost more than the default suite's
budget for Ray tests; the executors themselves are checked there (tests/unit/helix_shards,
tests/unit/provider_server/test_alignment_shards.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helix_it_helpers import admin_client, align, create_tenant

from client_agent.maps import MapStore, StoredMap
from tests.ray_support import RayCluster

CLIENT_EMBEDDER = "wordllama?dim=128"  # 432 samples >= 2 (D + 1): the provider's disclosure guard


@pytest.fixture(scope="module")
def ray_provider(provider_service_factory: Any, pki: Any, ray_cluster: RayCluster) -> Iterator[dict[str, Any]]:
    """A provider on the Ray cluster, with the session provider's head and corpus (same texts, same Y)."""
    svc = provider_service_factory(
        "provider-ray",
        HELIX_PROVIDER_WORKERS="1",
        HELIX_PROVIDER_ALIGNMENT_WORKERS="1",
        HELIX_PROVIDER_EXECUTOR="ray",
        HELIX_PROVIDER_RAY_ADDRESS=ray_cluster.address,
        HELIX_PROVIDER_ALIGNMENT_SHARD_CIPHERTEXTS="4",  # a few samples per ciphertext: several shards
    )
    svc.start()
    with admin_client(svc.url, str(pki.ca.cert)) as admin:
        head = {"name": "sst2", "dataset": "sst2", "max_examples": 400, "in_distribution_texts": 32}
        assert admin.post("/v1/admin/heads", json=head).status_code == 201
        corpus = {"name": "wiki", "dataset": "wikipedia", "file": "passages.jsonl", "limit": 400}
        assert admin.post("/v1/admin/corpora", json=corpus).status_code == 201
        yield {"svc": svc, "api_key": create_tenant(admin, "ray")[1]}
    svc.stop()


def aligned_map(agent: Any, **body: Any) -> StoredMap:
    job = align(agent.http, deadline_s=300.0, **body)
    assert job["state"] == "done", f"alignment failed: {job['error']}"
    stored = MapStore(Path(agent.data_dir) / "maps").get(job["map_id"])
    assert stored is not None
    return stored


@pytest.mark.slow
def test_alignment_on_ray_gives_the_local_paths_map(
    client_agent_factory: Any, ray_provider: dict[str, Any], ray_cluster: RayCluster
) -> None:
    include_head_texts = True
    local_agent = client_agent_factory("client-agent-ray-ref", HELIX_CLIENT_EMBEDDER=CLIENT_EMBEDDER)
    ray_agent = client_agent_factory(
        "client-agent-ray",
        HELIX_CLIENT_EMBEDDER=CLIENT_EMBEDDER,
        HELIX_CLIENT_PROVIDER_URL=ray_provider["svc"].url,
        HELIX_CLIENT_PROVIDER_API_KEY=ray_provider["api_key"],
        HELIX_CLIENT_EXECUTOR="ray",
        HELIX_CLIENT_RAY_ADDRESS=ray_cluster.address,
        HELIX_CLIENT_EMBED_SHARD_TEXTS="100",  # five embedding shards
        HELIX_CLIENT_ALIGNMENT_CHUNK_CIPHERTEXTS="4",
    )
    reference = aligned_map(local_agent, include_head_texts=include_head_texts)
    on_ray = aligned_map(ray_agent, include_head_texts=include_head_texts)
    # The work went to the cluster (each map of shards names its task and workers in the daemon's log).
    client_log = Path(ray_agent.service.log_path).read_text()
    assert "_embed_shard on 2 Ray workers" in client_log and "_encrypt_chunk on 2 Ray workers" in client_log
    assert "shard_partial on 2 Ray workers" in Path(ray_provider["svc"].log_path).read_text()
    assert "Ray workers" not in Path(local_agent.service.log_path).read_text()
    assert on_ray.meta.num_samples == reference.meta.num_samples == 432
    assert on_ray.meta.parameter_set == reference.meta.parameter_set
    w_ref, w_ray = reference.affine.weight, on_ray.affine.weight
    assert w_ray.shape == w_ref.shape
    assert np.linalg.norm(w_ray - w_ref) / np.linalg.norm(w_ref) < 1e-4, np.abs(w_ray - w_ref).max()
    np.testing.assert_allclose(
        on_ray.affine.bias, reference.affine.bias, atol=1e-4 * np.abs(reference.affine.bias).max()
    )
