"""Admin (bearer admin token): long admin work run as jobs (head trainings), listed, followed and
cancelled. A cancelled job's process is killed before DELETE answers; a finished job cannot be
cancelled (409 `job_finished`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from shared_protocol.messages import AdminJob

from .. import views
from ..deps import Jobs, require_admin

router = APIRouter(prefix="/v1/admin/jobs", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("", response_model=list[AdminJob])
def list_jobs(jobs: Jobs, limit: int = Query(50, ge=1, le=500, description="the newest this many")) -> list[AdminJob]:
    """Jobs, newest first."""
    return [views.job_view(j, jobs.trained_head(j)) for j in jobs.list(limit)]


@router.get("/{job_id}", response_model=AdminJob)
def get_job(job_id: str, jobs: Jobs) -> AdminJob:
    job = jobs.get(job_id)
    return views.job_view(job, jobs.trained_head(job))


@router.delete("/{job_id}", response_model=AdminJob)
async def cancel_job(job_id: str, jobs: Jobs) -> AdminJob:
    """Cancel a queued or running job: 200 with the job, now cancelled, once its process is gone."""
    return views.job_view(await jobs.cancel(job_id))
