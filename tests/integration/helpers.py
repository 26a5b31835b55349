"""Reading back what a request left in the database."""

from __future__ import annotations

from typing import Any

from ombud.audit.events import AuditEvent
from ombud.audit.repository import AuditRepository
from ombud.container import Container
from ombud.demo.credit_model import EXAMPLE_APPLICANT
from ombud.predictions.repository import PredictionRepository

PREDICT = "/v1/models/credit-risk/predict"


def applicant(**changes: Any) -> dict[str, Any]:
    features = dict(EXAMPLE_APPLICANT)
    features.update(changes)
    return {"features": features}


def bearer(key: str) -> dict[str, str]:
    """Credentials, and the purpose the default policy requires for credit scoring."""
    return {"Authorization": f"Bearer {key}", "X-Ombud-Purpose": "credit_scoring"}


async def audit_for(container: Container, request_id: str) -> list[AuditEvent]:
    async with container.sessions() as session:
        return await AuditRepository(session).by_request(request_id)


async def prediction_count(container: Container) -> int:
    async with container.sessions() as session:
        return await PredictionRepository(session).count()
