"""The full schema: importing this module registers every domain's tables on one metadata."""

from ombud.audit.tables import (
    AuditChainHeadRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditSigningKeyRow,
)
from ombud.crypto.tables import DataKeyRow
from ombud.identity.tables import ApiKeyRow, PrincipalRow, TenantRow
from ombud.jobs.tables import JobRow, JobScheduleRow
from ombud.llm.credentials import ProviderCredentialRow
from ombud.llm.usage.tables import LlmBudgetRow, LlmUsageRow
from ombud.policy.tables import PolicyDecisionRow
from ombud.predictions.tables import PredictionRow
from ombud.registry.tables import ModelVersionEventRow, ModelVersionRow, RegisteredModelRow
from ombud.review.tables import ReviewEventRow, ReviewRow, ReviewWebhookRow
from ombud.storage.base import Base

metadata = Base.metadata

__all__ = [
    "ApiKeyRow",
    "AuditChainHeadRow",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditSigningKeyRow",
    "DataKeyRow",
    "JobRow",
    "JobScheduleRow",
    "LlmBudgetRow",
    "LlmUsageRow",
    "ModelVersionEventRow",
    "ModelVersionRow",
    "PolicyDecisionRow",
    "PredictionRow",
    "PrincipalRow",
    "ProviderCredentialRow",
    "RegisteredModelRow",
    "ReviewEventRow",
    "ReviewRow",
    "ReviewWebhookRow",
    "TenantRow",
    "metadata",
]
