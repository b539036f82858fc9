"""Provider-held maps: who may hold a head's map, heads derived for one tenant, provider-held sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Heads and sessions from before are client-held (the only kind there was): the new NOT NULL columns
get defaults that say so, and the columns naming a base head, a derived head and an owner stay NULL.
`heads_base` finds a base head's derived heads, which are deleted with it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from provider_server.store.schema import TEXT

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("heads", sa.Column("map_holder", TEXT, nullable=False, server_default="client"))
    op.add_column("heads", sa.Column("base_head_id", TEXT))
    op.add_column("heads", sa.Column("tenant_id", TEXT))
    op.create_index("heads_base", "heads", ["base_head_id"])
    op.add_column("sessions", sa.Column("map_holder", TEXT, nullable=False, server_default="client"))
    op.add_column("sessions", sa.Column("map_method", TEXT, nullable=False, server_default=""))
    op.add_column("sessions", sa.Column("map_params", TEXT, nullable=False, server_default="{}"))
    op.add_column("sessions", sa.Column("derived_head_id", TEXT))
    op.add_column("sessions", sa.Column("map_choice", TEXT, nullable=False, server_default="{}"))


def downgrade() -> None:
    raise NotImplementedError("no downgrades: restore a backup instead")
