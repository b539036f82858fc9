"""Admin jobs: head trainings run as jobs, their state kept across restarts and shared by replicas.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

One row per job; `jobs_created` serves the listing, newest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from provider_server.store.schema import BIGINT, REAL, TEXT, TIMESTAMP

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", TEXT, primary_key=True),
        sa.Column("kind", TEXT, nullable=False),
        sa.Column("state", TEXT, nullable=False),
        sa.Column("head_id", TEXT, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("timeout_seconds", REAL, nullable=False),
        sa.Column("started_at", TIMESTAMP),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("pid", BIGINT),
        sa.Column("seconds", REAL),
        sa.Column("error_code", TEXT),
        sa.Column("error", TEXT),
    )
    op.create_index("jobs_created", "jobs", ["created_at"])


def downgrade() -> None:
    raise NotImplementedError("no downgrades: restore a backup instead")
