"""Tenants and their API keys: what the admin manages, and the check every tenant request passes.

A tenant is an account the admin creates; it owns the keys, challenges, sessions and results made
with its API keys. Authentication answers 401 for anything that is not a live API key (missing,
malformed, unknown, wrong secret, revoked) and 403 for a disabled tenant."""

from __future__ import annotations

import secrets

from helix_web.errors import bearer_token
from shared_protocol.accounts import QuotaOverrides, TenantCreate, TenantPatch

from ..api_keys import new_api_key, parse_api_key, secret_matches
from ..clock import utcnow
from ..errors import Conflict, Forbidden, Unauthorized, Unknown
from ..store import ApiKeyRecord, Quotas, RecordExistsError, Store, TenantRecord
from .audit import AuditLog


def quotas_of(body: QuotaOverrides) -> Quotas:
    return Quotas(
        queries_per_day=body.queries_per_day,
        alignments_per_day=body.alignments_per_day,
        storage_bytes=body.storage_bytes,
        rate_per_second=body.rate_per_second,
        rate_burst=body.rate_burst,
    )


class TenantService:
    def __init__(self, store: Store, audit: AuditLog) -> None:
        self._store = store
        self._audit = audit

    # -- the admin's side -------------------------------------------------------------------------
    def create(self, body: TenantCreate) -> TenantRecord:
        tenant = TenantRecord(
            tenant_id="t_" + secrets.token_hex(8), name=body.name, created_at=utcnow(), quotas=quotas_of(body.quotas)
        )
        try:
            self._store.add_tenant(tenant)
        except RecordExistsError:
            raise Conflict("tenant_exists", f"a tenant named {body.name!r} exists already") from None
        self._audit.record(tenant.tenant_id, "tenant.created", actor="admin")
        return tenant

    def all(self) -> list[TenantRecord]:
        return self._store.list_tenants()

    def get(self, tenant_id: str) -> TenantRecord:
        tenant = self._store.get_tenant(tenant_id)
        if tenant is None:
            raise Unknown("tenant", tenant_id)
        return tenant

    def patch(self, tenant_id: str, body: TenantPatch) -> TenantRecord:
        quotas = quotas_of(body.quotas) if body.quotas is not None else None
        tenant = self._store.update_tenant(tenant_id, disabled=body.disabled, quotas=quotas)
        if tenant is None:
            raise Unknown("tenant", tenant_id)
        if body.disabled is not None:
            self._audit.record(tenant_id, "tenant.disabled" if body.disabled else "tenant.enabled", actor="admin")
        if quotas is not None:
            self._audit.record(tenant_id, "tenant.quotas_set", actor="admin")
        return tenant

    def create_api_key(self, tenant_id: str) -> tuple[ApiKeyRecord, str]:
        """A new API key of the tenant, and the key itself (shown this once; only its hash is kept)."""
        self.get(tenant_id)
        made = new_api_key()
        record = ApiKeyRecord(
            key_id=made.key_id, tenant_id=tenant_id, secret_sha256=made.secret_sha256, created_at=utcnow()
        )
        self._store.add_api_key(record)
        self._audit.record(tenant_id, "api_key.created", actor="admin")
        return record, made.api_key

    def api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        self.get(tenant_id)
        return self._store.list_api_keys(tenant_id)

    def revoke_api_key(self, tenant_id: str, key_id: str) -> None:
        if not self._store.revoke_api_key(tenant_id, key_id):
            raise Unknown("api_key", key_id)
        self._audit.record(tenant_id, "api_key.revoked", actor="admin")

    # -- every tenant request ---------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> TenantRecord:
        """The tenant whose live API key is in `Authorization: Bearer <api key>`."""
        given = bearer_token(authorization)
        if given is None:
            raise Unauthorized("api_key_required", "missing 'Authorization: Bearer <api key>' header")
        parsed = parse_api_key(given)
        stored = self._store.get_api_key(parsed[0]) if parsed else None
        if parsed is None or stored is None or not secret_matches(parsed[1], stored.secret_sha256):
            raise Unauthorized("invalid_api_key", "the API key is not valid")
        if stored.revoked:
            raise Unauthorized("api_key_revoked", "the API key was revoked; ask the provider's admin for a new one")
        tenant = self._store.get_tenant(stored.tenant_id)
        if tenant is None:
            raise Unauthorized("invalid_api_key", "the API key is not valid")
        if tenant.disabled:
            raise Forbidden("tenant_disabled", "this tenant is disabled; ask the provider's admin")
        return tenant
