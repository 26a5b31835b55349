"""policy decisions

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bundle_version", sa.String(length=64), nullable=False),
        sa.Column("entrypoint", sa.String(length=200), nullable=False),
        sa.Column("input_digest", sa.String(length=64), nullable=False),
        sa.Column("allow", sa.Boolean(), nullable=False),
        sa.Column("review", sa.Boolean(), nullable=False),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("latency_us", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_decisions")),
    )
    with op.batch_alter_table("policy_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policy_decisions_bundle_version", ["bundle_version"], unique=False
        )
        batch_op.create_index("ix_policy_decisions_decided_at", ["decided_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("policy_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_decisions_decided_at")
        batch_op.drop_index("ix_policy_decisions_bundle_version")

    op.drop_table("policy_decisions")
