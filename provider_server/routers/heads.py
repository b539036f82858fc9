"""Public view of classification heads: metadata and published in-distribution texts, never W or b."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from shared_protocol.messages import HeadInfo, HeadTexts

from .. import views
from ..deps import Catalog, require_tenant

router = APIRouter(prefix="/v1/heads", tags=["heads"], dependencies=[Depends(require_tenant)])


@router.get("", response_model=list[HeadInfo])
def list_heads(catalog: Catalog) -> list[HeadInfo]:
    return [views.head_info(h) for h in catalog.list_heads()]


@router.get("/{head_id}", response_model=HeadInfo)
def get_head(head_id: str, catalog: Catalog) -> HeadInfo:
    return views.head_info(catalog.head(head_id))


@router.get("/{head_id}/texts", response_model=HeadTexts)
def head_texts(head_id: str, catalog: Catalog) -> HeadTexts:
    return views.head_texts(catalog.head(head_id))
