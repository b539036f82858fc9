"""Public view of classification heads: metadata and published in-distribution texts, never W or b."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from helix_web.errors import not_found
from shared_protocol.corpus import corpus_sha256
from shared_protocol.messages import HeadInfo, HeadTexts

from ..db import parse_dt
from ..deps import State

router = APIRouter(prefix="/v1/heads", tags=["heads"])


def head_info(row: dict[str, Any]) -> HeadInfo:
    return HeadInfo(id=row["id"], name=row["name"], task=row["task"], class_names=row["class_names"], dim=row["dim"],
                    num_classes=row["num_classes"], created_at=parse_dt(row["created_at"]),
                    in_distribution_texts=len(row["texts"]))


@router.get("", response_model=list[HeadInfo])
def list_heads(state: State) -> list[HeadInfo]:
    return [head_info(r) for r in state.repo.list_heads()]


@router.get("/{head_id}", response_model=HeadInfo)
def get_head(head_id: str, state: State) -> HeadInfo:
    row = state.repo.get_head(head_id)
    if row is None:
        raise not_found("head", head_id)
    return head_info(row)


@router.get("/{head_id}/texts", response_model=HeadTexts)
def head_texts(head_id: str, state: State) -> HeadTexts:
    row = state.repo.get_head(head_id)
    if row is None:
        raise not_found("head", head_id)
    return HeadTexts(head_id=head_id, texts=row["texts"], sha256=corpus_sha256(row["texts"]))
