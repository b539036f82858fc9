"""Stored alignment maps: weights as .npy (no pickle), metadata as JSON. A map records which
embedder it was fitted for; using it with another embedder is refused."""

from __future__ import annotations

import io
import os
import secrets
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


@dataclass(frozen=True)
class StoredMap:
    meta: MapMetadata
    affine: AffineMap


class MapStore:
    def __init__(self, root: Path) -> None:
        self.root = private_dir(root)

    def save(self, meta: dict[str, Any], affine: AffineMap) -> StoredMap:
        map_id = "m_" + secrets.token_hex(8)
        md = MapMetadata(map_id=map_id, source_dim=affine.source_dim, target_dim=affine.target_dim, **meta)
        folder = self.root / map_id
        tmp = self.root / f".{map_id}.tmp"
        tmp.mkdir(mode=0o700)
        write_private(tmp / "weight.npy", _npy(affine.weight))
        write_private(tmp / "bias.npy", _npy(affine.bias))
        write_private(tmp / "meta.json", md.model_dump_json(indent=2).encode())
        os.replace(tmp, folder)  # a map appears complete or not at all
        return StoredMap(md, affine)

    def get(self, map_id: str) -> StoredMap | None:
        folder = self.root / map_id
        if not map_id.startswith("m_") or "/" in map_id or len(map_id) > 64 or not (folder / "meta.json").exists():
            return None
        md = MapMetadata.model_validate_json((folder / "meta.json").read_text())
        affine = AffineMap(
            np.load(folder / "weight.npy", allow_pickle=False), np.load(folder / "bias.npy", allow_pickle=False)
        )
        return StoredMap(md, affine)

    def list(self) -> list[MapMetadata]:
        out = []
        for meta in self.root.glob("m_*/meta.json"):
            out.append(MapMetadata.model_validate_json(meta.read_text()))
        return sorted(out, key=lambda m: m.created_at)

    def latest_for(self, provider_url: str, head_id: str, client_model_id: str) -> StoredMap | None:
        cands = [
            m
            for m in self.list()
            if m.provider_url == provider_url and m.head_id == head_id and m.client_model_id == client_model_id
        ]
        return self.get(cands[-1].map_id) if cands else None


def _npy(arr: np.ndarray) -> bytes:
    """An array as .npy bytes (no pickle: a map is data, not code)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()
