"""Policy as code: Rego bundles evaluated in-process.

:class:`PolicyEngine` holds the active compiled bundle (hot reloaded), evaluates entrypoints into
:class:`PolicyDecision` records and hands them to a :class:`DecisionLog`. :class:`RegoDecider`
answers authorization through the bundle; the gateway stages live in :mod:`ombud.policy.stages`.
"""

from ombud.policy._rego import JsonValue
from ombud.policy.bundle import CompiledBundle, default_bundle_dir, load_bundle
from ombud.policy.decider import RegoDecider
from ombud.policy.decision import PolicyDecision, PolicyResult
from ombud.policy.engine import PolicyEngine
from ombud.policy.errors import BundleError, EvaluationError
from ombud.policy.log import DatabaseDecisionLog, DecisionLog, InMemoryDecisionLog

__all__ = [
    "BundleError",
    "CompiledBundle",
    "DatabaseDecisionLog",
    "DecisionLog",
    "EvaluationError",
    "InMemoryDecisionLog",
    "JsonValue",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyResult",
    "RegoDecider",
    "default_bundle_dir",
    "load_bundle",
]
