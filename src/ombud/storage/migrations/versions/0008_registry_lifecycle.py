"""registry lifecycle: model card metadata, approval decisions and the transition history

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Server defaults fill the versions registered before this revision.
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("description", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("intended_use", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("limitations", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("lineage", JSON, nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("metrics", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("created_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("submitted_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decision_reason", sa.Text(), nullable=True))

    op.create_table(
        "model_version_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_version_events_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version_events")),
        sa.UniqueConstraint("version_id", "seq", name=op.f("uq_model_version_events_version_id")),
    )
    with op.batch_alter_table("model_version_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_version_events_version_id"), ["version_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("model_version_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_version_events_version_id"))
    op.drop_table("model_version_events")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        for column in (
            "decision_reason", "decided_at", "decided_by", "submitted_at", "submitted_by",
            "created_by", "metrics", "lineage", "limitations", "intended_use", "description",
        ):  # fmt: skip
            batch_op.drop_column(column)
