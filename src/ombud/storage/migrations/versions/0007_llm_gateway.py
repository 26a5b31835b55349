"""llm gateway

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_provider_credentials")),
    )

    op.create_table(
        "llm_usage",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("principal_id", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("feature", sa.String(length=64), nullable=True),
        sa.Column("route", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=128), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_usage")),
    )
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.create_index(
            "ix_llm_usage_tenant_created", ["tenant_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_llm_usage_credential_created", ["credential_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_llm_usage_tenant_subject", ["tenant_id", "subject"], unique=False)
        batch_op.create_index("ix_llm_usage_tenant_feature", ["tenant_id", "feature"], unique=False)

    op.create_table(
        "llm_budgets",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("hard_limit_micro_usd", sa.BigInteger(), nullable=False),
        sa.Column("soft_limit_micro_usd", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_budgets")),
        sa.UniqueConstraint("scope", "scope_id", "period", name="uq_llm_budgets_scope_period"),
    )
    with op.batch_alter_table("llm_budgets", schema=None) as batch_op:
        batch_op.create_index("ix_llm_budgets_tenant", ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("llm_budgets", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_budgets_tenant")

    op.drop_table("llm_budgets")
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_usage_tenant_feature")
        batch_op.drop_index("ix_llm_usage_tenant_subject")
        batch_op.drop_index("ix_llm_usage_credential_created")
        batch_op.drop_index("ix_llm_usage_tenant_created")

    op.drop_table("llm_usage")
    op.drop_table("provider_credentials")
