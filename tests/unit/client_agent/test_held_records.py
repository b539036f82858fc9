"""Provider-held alignments on the agent: the record names the derived head and holds no map, the
holder is chosen by the request or the head's policy, and X travels in the provider's row blocks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from client_agent.api_models import AlignmentRequest
from client_agent.held_alignment import row_blocks
from client_agent.maps import MapStore, ProviderHeldMap
from client_agent.routers.alignments import choose_holder
from helix_alignment import AffineMap
from helix_web.errors import ApiError
from shared_protocol.messages import HeadInfo, MapHolder

META: dict[str, Any] = {
    "provider_url": "https://p",
    "head_id": "sst2",
    "corpus_id": "wiki",
    "corpus_sha256": "ab" * 32,
    "client_model_id": "wordllama",
    "provider_model_id": "minilm",
    "parameter_set": "",
    "ridge_lambda": 0.1,
    "num_samples": 432,
    "include_head_texts": True,
    "created_at": "2026-01-01T00:00:00+00:00",
    "alignment_seconds": 1.0,
    "bytes_sent": 1,
    "bytes_received": 1,
}


def test_a_provider_held_record_has_no_weights(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "maps")
    held = store.save_provider_held({**META, "source_dim": 128, "target_dim": 384, "derived_head_id": "ph_1"})
    assert sorted(p.name for p in (tmp_path / "maps" / held.meta.map_id).iterdir()) == ["meta.json"]
    again = MapStore(tmp_path / "maps").get(held.meta.map_id)
    assert again is not None and again.provider_held and again.meta.derived_head_id == "ph_1"
    with pytest.raises(ProviderHeldMap, match="ph_1"):
        again.affine  # noqa: B018 - the property refuses
    client = store.save(META, AffineMap(np.ones((128, 384)), np.zeros(384)))
    assert not client.provider_held and client.meta.map_holder == "client"
    newest = store.latest_for("https://p", "sst2", "wordllama")
    assert newest is not None and newest.meta.map_id in (held.meta.map_id, client.meta.map_id)


def head(holder: MapHolder, base: str | None = None) -> HeadInfo:
    return HeadInfo(
        id="h",
        name="h",
        task="t",
        class_names=["a", "b"],
        dim=384,
        num_classes=2,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        map_holder=holder,
        base_head_id=base,
    )


def test_the_holder_comes_from_the_request_or_the_heads_policy() -> None:
    def ask(holder: str | None) -> AlignmentRequest:
        return AlignmentRequest.model_validate({"head_id": "h", "corpus_id": "c", "map_holder": holder})

    assert choose_holder(head(MapHolder.client), ask(None)) == "client"
    assert choose_holder(head(MapHolder.either), ask(None)) == "client"
    assert choose_holder(head(MapHolder.provider), ask(None)) == "provider"
    assert choose_holder(head(MapHolder.either), ask("provider")) == "provider"
    for policy, holder, status in (
        (MapHolder.client, "provider", 422),
        (MapHolder.provider, "client", 422),
    ):
        with pytest.raises(ApiError) as info:
            choose_holder(head(policy), ask(holder))
        assert info.value.status == status and info.value.code == "map_holder_not_offered"
    with pytest.raises(ApiError) as info:
        choose_holder(head(MapHolder.provider, base="sst2"), ask(None))
    assert info.value.code == "derived_head"


def test_row_blocks_are_little_endian_float64_rows() -> None:
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    blocks = row_blocks(x, 4, 1, 2)
    assert [len(b) for b in blocks] == [4 * 3 * 8, 2 * 3 * 8]
    np.testing.assert_array_equal(np.frombuffer(b"".join(blocks), dtype="<f8").reshape(6, 3), x[4:])
