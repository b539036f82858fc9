"""Admin (bearer admin token): tenants, their API keys (the secret shown once), their usage, and the
audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from shared_protocol.accounts import (
    ApiKeyCreated,
    ApiKeyInfo,
    AuditPage,
    TenantCreate,
    TenantInfo,
    TenantPatch,
    UsageReport,
)

from .. import views
from ..deps import Meter, State, Tenants, require_admin

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.post("/tenants", response_model=TenantInfo, status_code=201)
def create_tenant(body: TenantCreate, tenants: Tenants, meter: Meter) -> TenantInfo:
    return views.tenant_info(tenants.create(body), meter)


@router.get("/tenants", response_model=list[TenantInfo])
def list_tenants(tenants: Tenants, meter: Meter) -> list[TenantInfo]:
    return [views.tenant_info(t, meter) for t in tenants.all()]


@router.get("/tenants/{tenant_id}", response_model=TenantInfo)
def get_tenant(tenant_id: str, tenants: Tenants, meter: Meter) -> TenantInfo:
    return views.tenant_info(tenants.get(tenant_id), meter)


@router.patch("/tenants/{tenant_id}", response_model=TenantInfo)
def patch_tenant(tenant_id: str, body: TenantPatch, tenants: Tenants, meter: Meter) -> TenantInfo:
    return views.tenant_info(tenants.patch(tenant_id, body), meter)


@router.post("/tenants/{tenant_id}/api-keys", response_model=ApiKeyCreated, status_code=201)
def create_api_key(tenant_id: str, tenants: Tenants) -> ApiKeyCreated:
    record, api_key = tenants.create_api_key(tenant_id)
    return ApiKeyCreated(**views.api_key_info(record).model_dump(), api_key=api_key)


@router.get("/tenants/{tenant_id}/api-keys", response_model=list[ApiKeyInfo])
def list_api_keys(tenant_id: str, tenants: Tenants) -> list[ApiKeyInfo]:
    return [views.api_key_info(k) for k in tenants.api_keys(tenant_id)]


@router.delete("/tenants/{tenant_id}/api-keys/{key_id}", status_code=204)
def revoke_api_key(tenant_id: str, key_id: str, tenants: Tenants) -> None:
    tenants.revoke_api_key(tenant_id, key_id)


@router.get("/tenants/{tenant_id}/usage", response_model=UsageReport)
def tenant_usage(tenant_id: str, tenants: Tenants, meter: Meter, state: State) -> UsageReport:
    return views.usage_report(tenants.get(tenant_id), meter, state.store)


@router.get("/audit", response_model=AuditPage)
def audit_log(
    state: State,
    tenant_id: str | None = Query(None, description="one tenant's lines; all when absent"),
    after: int = Query(0, ge=0, description="the seq of the last line already read"),
    limit: int = Query(100, ge=1, le=1000),
) -> AuditPage:
    lines = state.store.list_audit(tenant_id, after, limit)
    return views.audit_page(lines, limit)
