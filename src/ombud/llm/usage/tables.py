"""Tables of LLM usage accounting: one row per call, and the budgets calls are checked against."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, UTCDateTime


class LlmUsageRow(Base):
    """One LLM call. Rows are written only through the record writer and never updated.

    The indexes serve ``/v1/usage`` (a tenant's calls in a time range, optionally by key,
    subject or feature) and the budget windows (a tenant's or a key's spend since a time).
    """

    __tablename__ = "llm_usage"
    __table_args__ = (
        Index("ix_llm_usage_tenant_created", "tenant_id", "created_at"),
        Index("ix_llm_usage_credential_created", "credential_id", "created_at"),
        Index("ix_llm_usage_tenant_subject", "tenant_id", "subject"),
        Index("ix_llm_usage_tenant_feature", "tenant_id", "feature"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    tenant_id: Mapped[str] = mapped_column(String(64))
    principal_id: Mapped[str] = mapped_column(String(64))
    credential_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128))
    feature: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(32))
    alias: Mapped[str] = mapped_column(String(128))
    deployment: Mapped[str | None] = mapped_column(String(128))
    provider: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    estimated: Mapped[bool] = mapped_column(Boolean)
    cost_micro_usd: Mapped[int] = mapped_column(BigInteger)
    cached: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)


class LlmBudgetRow(Base):
    """A spending limit for a tenant or one of its API keys over a period (micro-dollars).

    ``scope_id`` is the tenant id for ``tenant`` budgets and the API key id for ``key`` budgets;
    ``tenant_id`` is the owning tenant either way, so a tenant's budgets load in one query.
    """

    __tablename__ = "llm_budgets"
    __table_args__ = (
        UniqueConstraint("scope", "scope_id", "period", name="uq_llm_budgets_scope_period"),
        Index("ix_llm_budgets_tenant", "tenant_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    scope_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    hard_limit_micro_usd: Mapped[int] = mapped_column(BigInteger)
    soft_limit_micro_usd: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
