"""prediction lineage: the exact model version, artifact digest, feature views and rollout arm

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_version_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("artifact_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("feature_views", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("deployment_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("arm", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_predictions_deployment_id", ["deployment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_deployment_id")
        batch_op.drop_column("arm")
        batch_op.drop_column("deployment_id")
        batch_op.drop_column("feature_views")
        batch_op.drop_column("artifact_sha256")
        batch_op.drop_column("model_version_id")
