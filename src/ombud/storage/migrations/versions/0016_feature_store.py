"""feature store: events and the offline store

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "feature_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("entity_id", sa.String(length=200), nullable=False),
        sa.Column("event_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_events")),
        sa.UniqueConstraint("tenant_id", "event_id", name=op.f("uq_feature_events_event_id")),
    )
    op.create_index(
        "ix_feature_events_lookup",
        "feature_events",
        ["tenant_id", "event_type", "entity_id", "event_ts"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_feature_events_lookup", table_name="feature_events")
    op.drop_table("feature_events")
