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
    explainable, or whose explanation fails, still answers: the call carries a
    ``not_explainable`` or ``explanation_failed`` finding (in its audit event) instead of an
    explanation, and reading its explanation later answers 404.
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
        except Exception as exc:  # noqa: BLE001 - the call was scored: answer it, say why not
            # An explainer that fails at run time (or an inference server that does not answer
            # the explanation in time) must not turn a scored call into an error: the prediction
            # is recorded with an ``explanation_failed`` finding, and reading its explanation
            # later answers 404.
            log.exception("explaining %s v%s failed", version.model, version.version)
            call.findings.append(Finding(self.name, "explanation_failed", type(exc).__name__))
        return None
