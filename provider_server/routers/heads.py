"""Public view of classification heads: metadata and published in-distribution texts, never W or b.

A tenant sees the admin's heads and the heads derived for it by its provider-held alignments; another
tenant's derived head answers exactly like an unknown id."""

from __future__ import annotations

from fastapi import APIRouter

from shared_protocol.messages import HeadInfo, HeadTexts

from .. import views
from ..deps import Catalog, Tenant

router = APIRouter(prefix="/v1/heads", tags=["heads"])


@router.get("", response_model=list[HeadInfo])
def list_heads(catalog: Catalog, tenant: Tenant) -> list[HeadInfo]:
    return [views.head_info(h, catalog.parameter_sets(h)) for h in catalog.list_heads(tenant.tenant_id)]


@router.get("/{head_id}", response_model=HeadInfo)
def get_head(head_id: str, catalog: Catalog, tenant: Tenant) -> HeadInfo:
    head = catalog.head(head_id, tenant.tenant_id)
    return views.head_info(head, catalog.parameter_sets(head))


@router.get("/{head_id}/texts", response_model=HeadTexts)
def head_texts(head_id: str, catalog: Catalog, tenant: Tenant) -> HeadTexts:
    return views.head_texts(catalog.head(head_id, tenant.tenant_id))


@router.delete("/{head_id}", status_code=204)
def delete_derived_head(head_id: str, catalog: Catalog, tenant: Tenant) -> None:
    """Delete a head derived for this tenant (the provider-held map goes with it)."""
    catalog.delete_derived_head(head_id, tenant.tenant_id)
