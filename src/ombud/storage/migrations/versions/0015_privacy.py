"""privacy: data subjects, the PII vault, consents and AI-usage preferences

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _subject_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["subject_id"], ["data_subjects.id"],
        name=op.f(f"fk_{table}_subject_id_data_subjects"), ondelete="CASCADE",
    )  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "data_subjects",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("external_ref", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_subjects")),
        sa.UniqueConstraint("tenant_id", "external_ref", name=op.f("uq_data_subjects_tenant_id")),
    )
    op.create_index(
        op.f("ix_data_subjects_tenant_id"), "data_subjects", ["tenant_id"], unique=False
    )
    op.create_table(
        "subject_vault",
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        _subject_fk("subject_vault"),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_subject_vault")),
    )
    op.create_table(
        "subject_consents",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _subject_fk("subject_consents"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_subject_consents")),
    )
    op.create_index(
        "ix_subject_consents_subject_purpose",
        "subject_consents",
        ["subject_id", "purpose"],
        unique=False,
    )
    op.create_table(
        "subject_preferences",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("personalization_opt_out", sa.Boolean(), nullable=False),
        sa.Column("automated_decision_opt_out", sa.Boolean(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        _subject_fk("subject_preferences"),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_subject_preferences")),
    )
    op.create_index(
        op.f("ix_subject_preferences_subject_id"),
        "subject_preferences",
        ["subject_id"],
        unique=False,
    )
    op.create_table(
        "subject_access_log",
        sa.Column("seq", SEQ, autoincrement=True, nullable=False),
        sa.Column("access_id", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_subject_access_log")),
        sa.UniqueConstraint("access_id", name=op.f("uq_subject_access_log_access_id")),
    )
    op.create_index(
        op.f("ix_subject_access_log_subject_id"),
        "subject_access_log",
        ["subject_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subject_access_log_subject_id"), table_name="subject_access_log")
    op.drop_table("subject_access_log")
    op.drop_index(op.f("ix_subject_preferences_subject_id"), table_name="subject_preferences")
    op.drop_table("subject_preferences")
    op.drop_index("ix_subject_consents_subject_purpose", table_name="subject_consents")
    op.drop_table("subject_consents")
    op.drop_table("subject_vault")
    op.drop_index(op.f("ix_data_subjects_tenant_id"), table_name="data_subjects")
    op.drop_table("data_subjects")
