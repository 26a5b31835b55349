"""outcomes: ground truth recorded against predictions

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "prediction_outcomes",
        sa.Column("prediction_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(length=16), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("history", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_prediction_outcomes_prediction_id_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_prediction_outcomes")),
    )
    with op.batch_alter_table("prediction_outcomes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prediction_outcomes_model_predicted",
            ["model_name", "predicted_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_prediction_outcomes_tenant_model",
            ["tenant_id", "model_name", "predicted_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_outcomes_tenant_model")
        batch_op.drop_index("ix_prediction_outcomes_model_predicted")
    op.drop_table("prediction_outcomes")
