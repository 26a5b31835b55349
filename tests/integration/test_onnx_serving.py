"""An ONNX model served end to end: signed in the store, verified on load, scored over HTTP."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from ombud.container import Container
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, FeatureSpec, ServingConfig, VersionStatus
from ombud.registry.service import RegistryService
from tests import onnx_support
from tests.integration.helpers import bearer

pytestmark = pytest.mark.anyio


async def test_an_onnx_model_is_served_and_scores_like_its_source(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    pipeline, graph = onnx_support.pipeline_model()
    stored = container.artifacts.put(graph, "onnx")
    async with container.sessions.begin() as session:
        await RegistryService(RegistryRepository(session), container.clock).register_version(
            model="churn-onnx", artifact_uri=stored.uri, sha256=stored.sha256,
            artifact_format=ArtifactFormat.ONNX,
            features=[
                FeatureSpec(name="plan", type="category", categories=["basic", "pro"]),
                FeatureSpec(name="tenure", type="number", minimum=0),
            ],
            serving=ServingConfig(threshold=0.5), status=VersionStatus.APPROVED,
        )  # fmt: skip

    response = await client.post(
        "/v1/models/churn-onnx/predict",
        json={"features": {"plan": "pro", "tenure": 30.0}},
        headers=bearer(api_key),
    )
    assert response.status_code == 200, response.text
    expected = pipeline.predict_proba(pd.DataFrame({"plan": ["pro"], "tenure": [30.0]}))[0, 1]
    assert response.json()["score"] == pytest.approx(expected, abs=1e-5)
    bad = await client.post(
        "/v1/models/churn-onnx/predict",
        json={"features": {"plan": "gold", "tenure": 30.0}},
        headers=bearer(api_key),
    )
    assert bad.status_code == 422
