"""Wire models of tenants: the accounts the admin creates, their API keys, quotas, usage and the
audit log. A tenant authenticates every tenant endpoint with `Authorization: Bearer <API key>`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: A tenant's name: chosen by the admin, unique, shown in listings (never in logs).
TenantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]

#: Header a refused (429) request carries: whole seconds until it may be tried again.
RETRY_AFTER = "Retry-After"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QuotaOverrides(_Strict):
    """A tenant's own limits; null (or absent) means the provider's default."""

    queries_per_day: int | None = Field(None, ge=0, description="classified queries per UTC day, per head")
    alignments_per_day: int | None = Field(None, ge=0, description="alignment sessions created per UTC day")
    storage_bytes: int | None = Field(None, ge=0, description="registered keys, uploaded chunks and results held")
    rate_per_second: float | None = Field(
        None, gt=0, le=1e6, allow_inf_nan=False, description="token refill of classify and creation requests"
    )
    rate_burst: int | None = Field(None, ge=1, le=1_000_000, description="most requests in a burst")


class EffectiveQuotas(_Strict):
    """The limits in force for a tenant: its overrides over the provider's defaults."""

    queries_per_day: int
    alignments_per_day: int
    storage_bytes: int
    rate_per_second: float
    rate_burst: int


class TenantCreate(_Strict):
    name: TenantName
    quotas: QuotaOverrides = Field(default_factory=QuotaOverrides)


class TenantPatch(_Strict):
    """Fields given are set; `quotas` replaces the tenant's overrides whole."""

    disabled: bool | None = None
    quotas: QuotaOverrides | None = None


class TenantInfo(_Strict):
    tenant_id: str
    name: str
    created_at: datetime
    disabled: bool
    quotas: QuotaOverrides
    effective_quotas: EffectiveQuotas


class ApiKeyInfo(_Strict):
    key_id: str
    tenant_id: str
    created_at: datetime
    revoked: bool


class ApiKeyCreated(ApiKeyInfo):
    """The one answer that shows the secret: the provider stores only its hash."""

    api_key: str = Field(description="hx_<key id>_<secret>: send it as 'Authorization: Bearer <api key>'")


class QuotaUsage(_Strict):
    used: int
    limit: int
    remaining: int


class HeadQueryUsage(QuotaUsage):
    head_id: str


class UsageReport(_Strict):
    """A tenant's usage today (UTC) against its limits; daily counters restart at `resets_at`."""

    tenant_id: str
    day: str
    resets_at: datetime
    queries: list[HeadQueryUsage] = Field(description="per head queried today; other heads have all their quota")
    queries_per_day: int
    alignments: QuotaUsage
    storage_bytes: QuotaUsage
    rate_per_second: float
    rate_burst: int


class AuditEntry(_Strict):
    seq: int
    at: datetime
    tenant_id: str | None
    actor: str
    action: str
    subject: str | None
    count: int
    request_id: str | None


class AuditPage(_Strict):
    """Entries with seq > `after`, ascending; ask again with `after=next_after` for more."""

    entries: list[AuditEntry]
    next_after: int | None = Field(description="null when this page is the last one")
