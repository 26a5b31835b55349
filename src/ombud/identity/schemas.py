"""Shapes the identity domain hands out (to the CLI and, later, the admin API)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ApiKeyRead(BaseModel):
    id: str
    prefix: str
    name: str
    tenant: str
    principal: str
    roles: list[str]
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyRead):
    token: str = Field(description="The key itself. Shown once; only its digest is stored.")
