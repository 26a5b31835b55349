"""residency: external ids reserved tenant-wide, across every region's store

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subject_external_refs",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "external_ref", name=op.f("pk_subject_external_refs")),
    )
    op.create_index(
        op.f("ix_subject_external_refs_subject_id"), "subject_external_refs", ["subject_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subject_external_refs_subject_id"), table_name="subject_external_refs")
    op.drop_table("subject_external_refs")
