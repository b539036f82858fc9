"""The alignment maps this agent has stored (read only: maps are made by alignments)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from helix_web.errors import not_found
from shared_protocol.messages import Identifier

from ..deps import State, require_token
from ..maps import MapMetadata

router = APIRouter(prefix="/v1", tags=["maps"], dependencies=[Depends(require_token)])


@router.get("/maps", response_model=list[MapMetadata])
def list_maps(state: State) -> list[MapMetadata]:
    return state.maps.list()


@router.get("/maps/{map_id}", response_model=MapMetadata)
def get_map(map_id: Identifier, state: State) -> MapMetadata:
    stored = state.maps.get(map_id)
    if stored is None:
        raise not_found("map", map_id)
    return stored.meta
