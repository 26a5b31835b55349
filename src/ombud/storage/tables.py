"""The full schema: importing this module registers every domain's tables on one metadata."""

from ombud.audit.tables import (
    AuditChainHeadRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditSigningKeyRow,
)
from ombud.crypto.tables import DataKeyRow
from ombud.deployments.tables import (
    DeploymentEventRow,
    DeploymentFailureRow,
    DeploymentRow,
    ShadowResultRow,
)
from ombud.features.tables import FeatureEventRow, OnlineFeatureRow
from ombud.flags.tables import FeatureFlagRow
from ombud.identity.tables import ApiKeyRow, PrincipalRow, TenantRow
from ombud.jobs.tables import JobRow, JobScheduleRow
from ombud.llm.credentials import ProviderCredentialRow
from ombud.llm.usage.tables import LlmBudgetRow, LlmUsageRow
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.policy.tables import PolicyDecisionRow
from ombud.predictions.explanations import PredictionExplanationRow
from ombud.predictions.tables import PredictionRow
from ombud.privacy.rights_tables import (
    SubjectErasureRow,
    SubjectExternalRefRow,
    TrainingExclusionRow,
)
from ombud.privacy.tables import (
    DataSubjectRow,
    SubjectAccessRow,
    SubjectConsentRow,
    SubjectPreferenceRow,
    SubjectVaultRow,
)
from ombud.registry.promotion_tables import (
    GoldenDatasetRow,
    PromotionPolicyRow,
    PromotionReportRow,
)
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
    "SubjectErasureRow",
    "SubjectExternalRefRow",
    "TrainingExclusionRow",
    "DataSubjectRow",
    "DeploymentEventRow",
    "DeploymentFailureRow",
    "DeploymentRow",
    "FeatureEventRow",
    "FeatureFlagRow",
    "GoldenDatasetRow",
    "JobRow",
    "JobScheduleRow",
    "LlmBudgetRow",
    "LlmUsageRow",
    "ModelVersionEventRow",
    "ModelVersionRow",
    "OnlineFeatureRow",
    "PolicyDecisionRow",
    "PredictionExplanationRow",
    "PredictionOutcomeRow",
    "PredictionRow",
    "PrincipalRow",
    "PromotionPolicyRow",
    "PromotionReportRow",
    "ProviderCredentialRow",
    "RegisteredModelRow",
    "ReviewEventRow",
    "ReviewRow",
    "ReviewWebhookRow",
    "ShadowResultRow",
    "SubjectAccessRow",
    "SubjectConsentRow",
    "SubjectPreferenceRow",
    "SubjectVaultRow",
    "TenantRow",
    "metadata",
]
