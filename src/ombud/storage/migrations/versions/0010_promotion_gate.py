"""promotion gate: golden datasets, promotion policies and promotion reports

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "golden_datasets",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_golden_datasets_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_golden_datasets")),
    )
    op.create_table(
        "promotion_policies",
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("max_metric_drop", JSON, nullable=False),
        sa.Column("min_metrics", JSON, nullable=False),
        sa.Column("max_score_change", sa.Float(), nullable=True),
        sa.Column("max_decision_change_fraction", sa.Float(), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registered_models.id"],
            name=op.f("fk_promotion_policies_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_promotion_policies")),
    )
    op.create_table(
        "promotion_reports",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("baseline_version_id", sa.String(length=64), nullable=True),
        sa.Column("golden_sha256", sa.String(length=64), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("report", JSON, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_promotion_reports_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_reports")),
    )
    with op.batch_alter_table("promotion_reports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_promotion_reports_version_id"), ["version_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_promotion_reports_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("promotion_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_promotion_reports_created_at"))
        batch_op.drop_index(batch_op.f("ix_promotion_reports_version_id"))
    op.drop_table("promotion_reports")
    op.drop_table("promotion_policies")
    op.drop_table("golden_datasets")
