"""A version that asks for explanations must be able to give them: checked at registration."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import skops.io
from sklearn.neighbors import KNeighborsClassifier

from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from tests import promotion_support as churn
from tests.integration.test_registry_api import version_body

pytestmark = pytest.mark.anyio

MODELS = "/v1/registry/models"


async def _scientist(container: Container) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(tenant="acme", roles=["data_scientist"])
    return {"Authorization": f"Bearer {created.token}"}


def _knn() -> bytes:
    """A classifier with no SHAP explainer ombud supports (neither linear nor trees)."""
    x = np.arange(20, dtype=float).reshape(-1, 1)
    buffer = io.BytesIO()
    skops.io.dump(KNeighborsClassifier(n_neighbors=3).fit(x, (x[:, 0] > 9).astype(int)), buffer)
    return buffer.getvalue()


def _explaining(
    uri: str, sha256: str, background: list[dict[str, int]] | None
) -> dict[str, object]:
    body = version_body(artifact_uri=uri, sha256=sha256)
    body["serving_config"] = {**body["serving_config"], "explain": True,
                              "explanation_background": background}  # fmt: skip
    return body


async def test_only_explainable_versions_may_ask_for_explanations(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await _scientist(container)
    assert (await client.post(MODELS, json={"name": "churn"}, headers=headers)).status_code == 201
    url = f"{MODELS}/churn/versions"
    background = [{"tenure_months": m} for m in range(0, 48, 4)]

    linear_uri, linear_sha = churn.store(container.artifacts)
    accepted = await client.post(
        url, json=_explaining(linear_uri, linear_sha, background), headers=headers
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["serving_config"]["explain"] is True

    stored = container.artifacts.put(_knn(), "skops")
    refused = await client.post(
        url, json=_explaining(stored.uri, stored.sha256, background), headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    # A linear model cannot explain without background rows to compare against.
    no_background = await client.post(
        url, json=_explaining(linear_uri, linear_sha, None), headers=headers
    )
    assert no_background.status_code == 422, no_background.text
    # A reference to an artifact the store does not hold cannot be checked: refused too.
    missing = await client.post(url, json=_explaining(linear_uri, "00" * 32, background),
                                headers=headers)  # fmt: skip
    assert missing.status_code == 422, missing.text
    versions = (await client.get(url, headers=headers)).json()
    assert [v["version"] for v in versions] == [1]
