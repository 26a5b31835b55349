"""audit chain

Revision ID: 0004
Revises: 0003

Adds ``prev_hash``/``hash`` to audit events, the chain head, checkpoints and signing keys.
Events that exist already are chained here, in seq order, so the chain covers the whole trail
from its first event and no separate re-chaining step is needed.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from ombud.audit.chain import GENESIS, link_hash
from ombud.audit.events import AuditEvent, Outcome

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EVENTS = sa.table(
    "audit_events",
    *(
        sa.column(name)
        for name in (
            "seq",
            "event_id",
            "occurred_at",
            "request_id",
            "tenant_id",
            "actor",
            "action",
            "resource",
            "purpose",
            "subject",
            "outcome",
            "reason",
            "prev_hash",
            "hash",
        )
    ),  # fmt: skip
    sa.column("detail", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    last_seq, last_hash = _chain_existing_events()
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)

    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "last_seq": last_seq, "last_hash": last_hash, "updated_at": datetime.now(UTC)}],
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_seq"), ["seq"], unique=False)
    op.create_table(
        "audit_signing_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_audit_signing_keys")),
    )


def _chain_existing_events() -> tuple[int, str]:
    """Link every existing event in seq order; the head (last seq, last hash) it ends at."""
    connection = op.get_bind()
    rows = connection.execute(sa.select(_EVENTS).order_by(_EVENTS.c.seq)).mappings()
    prev, last_seq = GENESIS, 0
    for row in rows.all():
        event = AuditEvent(
            event_id=row["event_id"], occurred_at=_utc(row["occurred_at"]), actor=row["actor"],
            action=row["action"], resource=row["resource"], outcome=Outcome(row["outcome"]),
            tenant_id=row["tenant_id"], request_id=row["request_id"], purpose=row["purpose"],
            subject=row["subject"], reason=row["reason"], detail=dict(row["detail"] or {}),
        )  # fmt: skip
        digest = link_hash(prev, row["seq"], event)
        connection.execute(
            sa.update(_EVENTS)
            .where(_EVENTS.c.seq == row["seq"])
            .values(prev_hash=prev, hash=digest)
        )
        prev, last_seq = digest, row["seq"]
    return last_seq, prev


def _utc(value: datetime | str) -> datetime:
    # SQLite hands back text without a zone; the column always stores UTC.
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def downgrade() -> None:
    op.drop_table("audit_signing_keys")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_seq"))
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
