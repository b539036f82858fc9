"""Admin (bearer admin token): run one garbage collection sweep now and see what it removed
(`provider_server.retention`); the same sweep also runs every `gc_interval_seconds`."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..deps import State, require_admin

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class SweepReportView(BaseModel):
    """What one sweep removed."""

    sessions: list[str] = Field(
        description="alignment sessions removed (expired, abandoned, or results kept long enough)"
    )
    keys: list[str] = Field(description="keys removed (revoked, long expired, or spent single-use alignment keys)")
    blobs: int = Field(description="blob files removed")
    temp_files: int = Field(description="temporary files of interrupted writes removed")
    session_folders: int = Field(description="ciphertext folders of sessions that no longer exist removed")
    challenges: int = Field(description="long-expired key challenges removed")
    bytes_freed: int


@router.post("/gc", response_model=SweepReportView)
async def sweep(state: State) -> SweepReportView:
    return SweepReportView(**asdict(await run_in_threadpool(state.sweeper.sweep)))
