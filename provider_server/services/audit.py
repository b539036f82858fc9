"""The audit log as services write it: one line per thing a tenant did (or the admin did to a
tenant), with the request's id so an operator can match it to the access log. Lines name heads
and counts, never key, session or challenge ids or secrets."""

from __future__ import annotations

from helix_web.request_id import current_request_id

from ..clock import utcnow
from ..store import AuditRecord, Store


class AuditLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self, tenant_id: str | None, action: str, *, subject: str | None = None, count: int = 1, actor: str = "tenant"
    ) -> None:
        self._store.append_audit(
            AuditRecord(
                tenant_id=tenant_id,
                action=action,
                at=utcnow(),
                count=count,
                subject=subject,
                request_id=current_request_id(),
                actor=actor,
            )
        )
