"""The full schema: importing this module registers every domain's tables on one metadata."""

from ombud.audit.tables import AuditEventRow
from ombud.crypto.tables import DataKeyRow
from ombud.identity.tables import ApiKeyRow, PrincipalRow, TenantRow
from ombud.jobs.tables import JobRow, JobScheduleRow
from ombud.predictions.tables import PredictionRow
from ombud.registry.tables import ModelVersionRow, RegisteredModelRow
from ombud.storage.base import Base

metadata = Base.metadata

__all__ = [
    "ApiKeyRow",
    "AuditEventRow",
    "DataKeyRow",
    "JobRow",
    "JobScheduleRow",
    "ModelVersionRow",
    "PredictionRow",
    "PrincipalRow",
    "RegisteredModelRow",
    "TenantRow",
    "metadata",
]
