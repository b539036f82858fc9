"""A tenant's own usage: what it used today, its limits, and what remains."""

from __future__ import annotations

from fastapi import APIRouter

from shared_protocol.accounts import UsageReport

from .. import views
from ..deps import Meter, State, Tenant

router = APIRouter(prefix="/v1", tags=["usage"])


@router.get("/usage", response_model=UsageReport)
def usage(tenant: Tenant, meter: Meter, state: State) -> UsageReport:
    return views.usage_report(tenant, meter, state.store)
