"""Stored alignment maps: weights as .npy (no pickle), metadata as JSON. A map records which
embedder it was fitted for; using it with another embedder is refused.

A provider-held alignment stores no map at all: its record holds the metadata and the id of the head
the provider derived for this tenant (the map folded in), and no weights."""

from __future__ import annotations

import collections
import io
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from helix_alignment import AffineMap
from helix_web.private_files import private_dir, write_private


class MapMetadata(BaseModel):
    map_id: str
    provider_url: str
    head_id: str
    corpus_id: str
    corpus_sha256: str
    client_model_id: str
    provider_model_id: str
    parameter_set: str
    ridge_lambda: float
    map_method: str = "ridge"  # maps stored before methods were selectable are plain ridge
    map_params: dict[str, float | int | str | None] = {}
    num_samples: int
    include_head_texts: bool
    source_dim: int
    target_dim: int
    created_at: str
    alignment_seconds: float
    bytes_sent: int
    bytes_received: int
    map_holder: str = "client"  # records from before provider-held maps are client-held
    derived_head_id: str | None = None  # provider-held: the head to classify our own embeddings with


class ProviderHeldMap(LookupError):
    """A provider-held alignment: the provider holds the map, the agent never had it."""


@dataclass(frozen=True)
class StoredMap:
    meta: MapMetadata
    held_affine: AffineMap | None  # None for a provider-held alignment

    @property
    def provider_held(self) -> bool:
        return self.held_affine is None

    @property
    def affine(self) -> AffineMap:
        """The client-held map; ProviderHeldMap for a provider-held alignment, which has none here."""
        if self.held_affine is None:
            raise ProviderHeldMap(
                f"alignment {self.meta.map_id} is provider-held: the map is folded into head "
                f"{self.meta.derived_head_id!r} at the provider, and the agent never held it"
            )
        return self.held_affine


class MapStore:
    """Maps on disk, with what was read kept in memory.

    Why the memory: a map folder is written once (it appears complete by a rename) and never changed,
    so its metadata and weights can be kept after the first read. Classifying looks up the newest map
    for a head on every request; re-reading every map's JSON and weights cost ~5 ms per request.
    The folder listing is still read each time (cheap), so a map written by another process or
    removed by an operator is seen."""

    def __init__(self, root: Path, cached_maps: int = 32) -> None:
        self.root = private_dir(root)
        self._meta: dict[str, MapMetadata] = {}
        self._maps: collections.OrderedDict[str, StoredMap] = collections.OrderedDict()
        self._cached_maps = cached_maps
        self._lock = threading.Lock()

    def save(self, meta: dict[str, Any], affine: AffineMap) -> StoredMap:
        return self._save({**meta, "source_dim": affine.source_dim, "target_dim": affine.target_dim}, affine)

    def save_provider_held(self, meta: dict[str, Any]) -> StoredMap:
        """The record of a provider-held alignment: metadata (with `derived_head_id` and both dimensions),
        no weights."""
        return self._save({**meta, "map_holder": "provider"}, None)

    def _save(self, meta: dict[str, Any], affine: AffineMap | None) -> StoredMap:
        map_id = "m_" + secrets.token_hex(8)
        md = MapMetadata(map_id=map_id, **meta)
        folder = self.root / map_id
        tmp = self.root / f".{map_id}.tmp"
        tmp.mkdir(mode=0o700)
        if affine is not None:
            write_private(tmp / "weight.npy", _npy(affine.weight))
            write_private(tmp / "bias.npy", _npy(affine.bias))
        write_private(tmp / "meta.json", md.model_dump_json(indent=2).encode())
        os.replace(tmp, folder)  # a map appears complete or not at all
        stored = StoredMap(md, affine)
        self._remember(stored)
        return stored

    def get(self, map_id: str) -> StoredMap | None:
        folder = self.root / map_id
        if not map_id.startswith("m_") or "/" in map_id or len(map_id) > 64 or not (folder / "meta.json").exists():
            return None
        with self._lock:
            stored = self._maps.get(map_id)
            if stored is not None:
                self._maps.move_to_end(map_id)
                return stored
        md = self._metadata(map_id)
        affine = None
        if md.map_holder == "client":
            affine = AffineMap(
                np.load(folder / "weight.npy", allow_pickle=False), np.load(folder / "bias.npy", allow_pickle=False)
            )
        stored = StoredMap(md, affine)
        self._remember(stored)
        return stored

    def list(self) -> list[MapMetadata]:
        present = {p.parent.name for p in self.root.glob("m_*/meta.json")}
        with self._lock:
            for gone in set(self._meta) - present:
                self._meta.pop(gone, None)
                self._maps.pop(gone, None)
        return sorted((self._metadata(map_id) for map_id in present), key=lambda m: m.created_at)

    def latest_for(self, provider_url: str, head_id: str, client_model_id: str) -> StoredMap | None:
        cands = [
            m
            for m in self.list()
            if m.provider_url == provider_url and m.head_id == head_id and m.client_model_id == client_model_id
        ]
        return self.get(cands[-1].map_id) if cands else None

    def _metadata(self, map_id: str) -> MapMetadata:
        with self._lock:
            md = self._meta.get(map_id)
        if md is None:
            md = MapMetadata.model_validate_json((self.root / map_id / "meta.json").read_text())
            with self._lock:
                self._meta[map_id] = md
        return md

    def _remember(self, stored: StoredMap) -> None:
        with self._lock:
            self._meta[stored.meta.map_id] = stored.meta
            self._maps[stored.meta.map_id] = stored
            self._maps.move_to_end(stored.meta.map_id)
            while len(self._maps) > self._cached_maps:
                self._maps.popitem(last=False)


def _npy(arr: np.ndarray) -> bytes:
    """An array as .npy bytes (no pickle: a map is data, not code)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
