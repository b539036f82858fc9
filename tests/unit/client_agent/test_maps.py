"""The map store: maps are written once, read from memory after the first read, and the folder
listing still decides what exists (maps written by another process appear, removed ones vanish)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from client_agent.maps import MapStore
from helix_alignment import AffineMap


def meta(head_id: str, created_at: str) -> dict[str, object]:
    return {
        "provider_url": "https://provider",
        "head_id": head_id,
        "corpus_id": "c",
        "corpus_sha256": "0" * 64,
        "client_model_id": "client-model",
        "provider_model_id": "provider-model",
        "parameter_set": "ckks-n8192-q200",
        "ridge_lambda": 1.0,
        "num_samples": 10,
        "include_head_texts": False,
        "created_at": created_at,
        "alignment_seconds": 1.0,
        "bytes_sent": 1,
        "bytes_received": 1,
    }


def affine(seed: int) -> AffineMap:
    rng = np.random.default_rng(seed)
    return AffineMap(rng.normal(size=(4, 3)), rng.normal(size=3))


def test_latest_map_is_found_and_served_from_memory(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "maps")
    old = store.save(meta("h", "2026-01-01T00:00:00"), affine(1))
    new = store.save(meta("h", "2026-01-02T00:00:00"), affine(2))
    store.save(meta("other", "2026-01-03T00:00:00"), affine(3))
    got = store.latest_for("https://provider", "h", "client-model")
    assert got is not None and got.meta.map_id == new.meta.map_id
    assert np.array_equal(got.affine.weight, affine(2).weight)
    # Weights are read once: with the files gone but the map still listed, it is served from memory.
    (tmp_path / "maps" / new.meta.map_id / "weight.npy").unlink()
    again = store.get(new.meta.map_id)
    assert again is not None and np.array_equal(again.affine.weight, affine(2).weight)
    assert store.get(old.meta.map_id) is not None


def test_the_listing_decides_what_exists(tmp_path: Path) -> None:
    store = MapStore(tmp_path / "maps")
    first = store.save(meta("h", "2026-01-01T00:00:00"), affine(1))
    elsewhere = MapStore(tmp_path / "maps").save(meta("h", "2026-01-02T00:00:00"), affine(2))  # another process
    got = store.latest_for("https://provider", "h", "client-model")
    assert got is not None and got.meta.map_id == elsewhere.meta.map_id
    shutil.rmtree(tmp_path / "maps" / elsewhere.meta.map_id)  # an operator removes a map
    assert store.get(elsewhere.meta.map_id) is None
    assert [m.map_id for m in store.list()] == [first.meta.map_id]
    got = store.latest_for("https://provider", "h", "client-model")
    assert got is not None and got.meta.map_id == first.meta.map_id
