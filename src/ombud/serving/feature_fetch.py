"""``model.features``: the inputs a call leaves out, read from the feature store.

A version whose serving config names a feature view (``serving.feature_view``) may be called
with only the inputs that belong to the request itself (the amount, the duration...): the
inputs the view provides and the body leaves out are read from the online store for the
subject named by ``X-Ombud-Subject``, for the purpose in ``X-Ombud-Purpose``, through
:meth:`~ombud.features.online_reads.OnlineFeatures.get_features` (so the data access layer
checks the purpose, the subject's consent, tenancy and policy, and audits the read). The view's
name and version are recorded with the prediction (``feature_views``).

- Inputs the body carries are used as sent: the store fills only what is left out. A body with
  every input reads nothing (as for a version without a view). Every input the model was given,
  wherever it came from, is sealed into the prediction record, so a replay needs no store.
- Without a registered subject id, nothing is read, and validation lists the missing inputs
  (422). With one but no purpose, the read is refused (403 ``purpose_required``).
- A subject who opted out of personalization gets no personal features read: the version's
  declared non-personalized ``fallback`` values stand in, the call carries the finding
  ``model.features:non_personalized`` (in the prediction's audit event), and the view is not
  recorded in ``feature_views`` (nothing was read from it).
- A feature with no fresh value for the subject (never materialized, or older than the view's
  ttl) refuses the call, 422, naming each one: a model is never fed a silent default.
- A version naming a view that is not declared answers 503 ``model_unavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ombud.core.errors import FieldError, InvalidRequest, ModelUnavailable, NotFound
from ombud.features.definitions import SUBJECT_ID
from ombud.features.online_reads import OnlineFeatures, find_view
from ombud.gateway.call import Call, Finding
from ombud.gateway.outcomes import Outcome
from ombud.privacy.stage import PERSONALIZATION_OPT_OUT, opted_out

STAGE = "model.features"
NON_PERSONALIZED = "non_personalized"


class FetchFeatures:
    """Fills a call's missing view-fed inputs from the online store (see the module docstring).

    Args:
        online: The consent-checked online reads (built on first use).
    """

    name = STAGE

    def __init__(self, online: Callable[[], OnlineFeatures]) -> None:
        self._online = online

    async def __call__(self, call: Call) -> Outcome:
        version = call.model_version
        source = version.serving.feature_view if version is not None else None
        if version is None or source is None:
            return None
        body = _body(call.body)
        if body is None:
            return None  # model.validate explains what is wrong with it
        features: dict[str, Any] = body["features"]
        online = self._online()
        try:
            view = find_view(online.catalog, source.name, source.version)
        except NotFound as exc:
            raise ModelUnavailable(
                detail=f"{version.model} v{version.version} reads feature view "
                f"{source.name} v{source.version}, which is not declared"
            ) from exc
        inputs = {f.name for f in version.input_features}
        missing = [f.name for f in view.features if f.name in inputs and f.name not in features]
        if not missing or call.subject is None or not SUBJECT_ID.fullmatch(call.subject):
            return None
        personal = not opted_out(call, PERSONALIZATION_OPT_OUT)
        if personal:
            rows = await online.get_features(
                view.id, [call.subject], call.purpose,
                principal=call.require_principal(), request_id=call.request_id,
            )  # fmt: skip
            row = rows[call.subject]
            values = {name: row.values.get(name) for name in missing}
            why = f"no fresh value in feature view {view.id} for the subject"
        else:
            values = {name: source.fallback.get(name) for name in missing}
            call.findings.append(Finding(STAGE, NON_PERSONALIZED, view.id))
            why = "no non-personalized fallback is declared for it"
        absent = [name for name, value in values.items() if value is None]
        if absent:
            raise InvalidRequest(
                detail=f"inputs the feature store must provide are unavailable: {absent}",
                errors=[
                    FieldError(("body", "features", n), why, "feature_unavailable") for n in absent
                ],
            )
        features.update(values)
        call.body = json.dumps(body).encode()
        if personal:
            call.feature_views[view.name] = view.version
        return None


def _body(raw: bytes | None) -> dict[str, Any] | None:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("features"), dict):
        return None
    return body
