"""data-subject rights: erasure requests and the training-exclusion list

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "subject_erasures",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_erasures")),
    )
    op.create_index(
        "ix_subject_erasures_tenant_ref", "subject_erasures", ["tenant_id", "subject_ref"]
    )
    op.create_table(
        "training_exclusions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("entity_ref", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "entity_ref", name=op.f("pk_training_exclusions")),
    )


def downgrade() -> None:
    op.drop_table("training_exclusions")
    op.drop_index("ix_subject_erasures_tenant_ref", table_name="subject_erasures")
    op.drop_table("subject_erasures")
