"""``privacy.preferences``: the data subject's AI-usage choices, applied to the call.

When a call names a subject (``X-Ombud-Subject``) that is a registered subject of the caller's
tenant, the stage reads the subject's current preferences and records each opt-out as a finding
on the call (``privacy.preferences:automated_decision_opt_out``,
``privacy.preferences:personalization_opt_out``). Findings are how later stages learn of them:
the policy input is built from them (:func:`ombud.policy.inputs.before_input`), and they are
recorded with the prediction or the LLM usage record, so the trail says why a call was handled
as it was.

Cost: at most one indexed query per call (the newest preferences row of the subject, in the
subject's home store: :mod:`ombud.privacy.regions`), and none for ids that cannot be registered
subjects (``sub_`` and 32 hex digits). The preferences are never cached, so a change applies to
the very next call.

Residency: the stage also puts the subject's region on the call (``Call.subject_region``,
remembered in process after the first lookup), which model and LLM routing then honour.

Erasure: a call naming a subject its tenant erased is refused, 410 ``subject_erased`` (one
indexed read of the erasure list), so nothing new is computed, cached or recorded about it.

Tenancy: a preferences row is written only by a caller of the subject's own tenant and carries
that tenant, so a row whose tenant is not the caller's is ignored: another tenant's subject id
applies nothing. Unregistered ids, and subjects who never chose, mean "no preferences recorded":
the call goes on as before.
"""

from __future__ import annotations

import re

from ombud.core.errors import SubjectErased
from ombud.gateway.call import Call, Finding
from ombud.gateway.outcomes import Outcome
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.regions import RegionalStores
from ombud.privacy.repository import PrivacyRepository
from ombud.privacy.tables import SubjectPreferenceRow

STAGE = "privacy.preferences"
AUTOMATED_DECISION_OPT_OUT = "automated_decision_opt_out"
PERSONALIZATION_OPT_OUT = "personalization_opt_out"

_SUBJECT_ID = re.compile(r"^sub_[0-9a-f]{32}$")


def opted_out(call: Call, kind: str) -> bool:
    """Whether this call's subject opted out of ``kind`` (one of the two constants above)."""
    return any(f.stage == STAGE and f.kind == kind for f in call.findings)


class SubjectPreferences:
    """Reads the named subject's preferences and records its opt-outs on the call.

    Args:
        regions: Where each subject's preferences are (a short read-only unit of work there).
    """

    name = STAGE

    def __init__(
        self, regions: RegionalStores, exclusions: TrainingExclusions | None = None
    ) -> None:
        self._regions = regions
        self._exclusions = exclusions

    async def __call__(self, call: Call) -> Outcome:
        principal = call.require_principal()
        subject = call.subject
        if subject is None or not _SUBJECT_ID.match(subject):
            return None
        if self._exclusions is not None and await self._exclusions.excluded(
            principal.tenant_id, [subject]
        ):
            raise SubjectErased(detail="the subject was erased: no call may concern it any more")
        located = await self._regions.locate(subject)
        if located is not None and located[1] == principal.tenant_id:
            call.subject_region = located[0]
        row = await self._current(subject)
        if row is None or row.tenant_id != principal.tenant_id:
            return None
        if row.automated_decision_opt_out:
            call.findings.append(Finding(STAGE, AUTOMATED_DECISION_OPT_OUT))
        if row.personalization_opt_out:
            call.findings.append(Finding(STAGE, PERSONALIZATION_OPT_OUT))
        return None

    async def _current(self, subject: str) -> SubjectPreferenceRow | None:
        home = await self._regions.home(subject)
        async with home.sessions() as session:
            return await PrivacyRepository(session).current_preferences(subject)
