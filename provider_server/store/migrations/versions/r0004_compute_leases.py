"""Compute leases: the replica computing a session and until when it is known to be alive for it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Several provider processes share one database: a computation is claimed with a lease its replica
renews; another replica may take over a computation whose lease expired. Sessions from before have
neither (NULL), which no claim counts as expired.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from provider_server.store.schema import TEXT, TIMESTAMP

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("compute_owner", TEXT))
    op.add_column("sessions", sa.Column("lease_expires_at", TIMESTAMP))


def downgrade() -> None:
    raise NotImplementedError("no downgrades: restore a backup instead")
