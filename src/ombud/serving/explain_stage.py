"""Stage ``model.explain``: the SHAP explanation of a high-impact model's prediction."""

from __future__ import annotations

import logging

from ombud.gateway.call import Call, Finding
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.serving.explain import NotExplainable
from ombud.serving.ports import AnyRuntime

log = logging.getLogger(__name__)


class ExplainPrediction:
    """``model.explain``: for versions with ``serving_config.explain``, put the explanation on
    ``call.explanation`` (``model.record`` seals and records it with the prediction).

    Runs after ``model.invoke``, off the event loop. A model that turns out not to be
    explainable still answers: the call carries a ``not_explainable`` finding (in its audit
    event) instead of an explanation, and reading its explanation later answers 404.
    """

    name = "model.explain"

    def __init__(self, runtime: AnyRuntime) -> None:
        self._runtime = runtime

    async def __call__(self, call: Call) -> StageOutcome:
        version = call.require_model()
        if not version.serving.explain:
            return None
        loaded = await self._runtime.get(version)
        try:
            call.explanation = await self._runtime.explain(loaded, call.payload)
        except NotExplainable as exc:
            log.error("%s v%s cannot explain: %s", version.model, version.version, exc)
            call.findings.append(Finding(self.name, "not_explainable", str(exc)))
        return None
