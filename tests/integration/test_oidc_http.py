"""Bearer JWTs through the ASGI app, on every storage backend: the AI call (the gateway chain)
and a control-plane route (``get_principal``) accept them; attacks are 401 and audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ombud.audit.events import ANONYMOUS, Outcome
from ombud.config import OidcSettings, Settings
from ombud.container import Container
from ombud.identity.oidc import principal_id
from ombud.identity.repository import IdentityRepository
from ombud.predictions.repository import PredictionRepository
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count
from tests.oidc_support import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKeyPair,
    alg_none,
    claims,
    ec_key,
    hs256_with_public_key,
    mint,
    rsa_key,
    tampered_signature,
)

pytestmark = pytest.mark.anyio

Keys = dict[str, SigningKeyPair]


@pytest.fixture(scope="module")
def keys() -> Keys:
    return {"rsa": rsa_key(), "ec": ec_key()}


@pytest.fixture
def jwks(keys: Keys) -> Iterator[JwksServer]:
    with JwksServer(keys=list(keys.values())).running() as server:
        yield server


@pytest.fixture
def settings(settings: Settings, jwks: JwksServer) -> Settings:
    oidc = OidcSettings(issuer=ISSUER, audience=[AUDIENCE, "other-api"], jwks_url=jwks.url)
    return settings.model_copy(update={"oidc": oidc})


def user_token(keys: Keys, **changes: Any) -> str:
    return mint(keys["rsa"], claims(time.time(), **changes))


async def test_jwt_user_predicts_and_reads_the_prediction_back(
    client: httpx.AsyncClient, container: Container, keys: Keys, api_key: str
) -> None:
    token = mint(keys["ec"], claims(time.time(), sub="ada", roles="analyst"))

    response = await client.post(
        PREDICT, json=applicant(), headers={**bearer(token), "X-Ombud-Subject": "subj-7"}
    )
    assert response.status_code == 200, response.text
    prediction_id = response.json()["prediction_id"]

    read = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(token))
    assert read.status_code == 200, read.text
    assert read.json()["prediction_id"] == prediction_id

    expected_id = principal_id(ISSUER, "ada")
    async with container.sessions() as session:
        record = await PredictionRepository(session).get(prediction_id)
        tenant = await IdentityRepository(session).tenant_by_slug("demo")
    assert record is not None
    assert tenant is not None
    assert (record.principal_id, record.tenant_id) == (expected_id, tenant.id)
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.actor, event.outcome, event.tenant_id) == (
        expected_id,
        Outcome.SUCCESS,
        tenant.id,
    )


async def test_api_keys_keep_working_next_to_jwts(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 200, response.text
    response = await client.post(
        PREDICT,
        json=applicant(),
        headers={"x-api-key": api_key, "X-Ombud-Purpose": "credit_scoring"},
    )
    assert response.status_code == 200, response.text


async def test_service_token_is_accepted(
    client: httpx.AsyncClient, keys: Keys, api_key: str
) -> None:
    token = user_token(keys, sub="scoring-job", client_id="scoring-job", roles=["service"])
    response = await client.post(PREDICT, json=applicant(), headers=bearer(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("roles", "route"),
    [(["compliance_officer"], "predict"), ([], "read")],
)
async def test_jwt_without_the_permission_is_403(
    client: httpx.AsyncClient, keys: Keys, api_key: str, roles: list[str], route: str
) -> None:
    token = user_token(keys, roles=roles)
    if route == "predict":
        response = await client.post(PREDICT, json=applicant(), headers=bearer(token))
    else:
        allowed = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
        prediction_id = allowed.json()["prediction_id"]
        response = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(token))
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"


def _signed(**changes: Any) -> Callable[[Keys], str]:
    return lambda keys: user_token(keys, **changes)


def _relative(**offsets: int) -> Callable[[Keys], str]:
    def build(keys: Keys) -> str:
        now = int(time.time())
        return user_token(keys, **{name: now + delta for name, delta in offsets.items()})

    return build


ATTACKS: dict[str, Callable[[Keys], str]] = {
    "alg-none": lambda keys: alg_none(keys, time.time()),
    "hs256-key-confusion": lambda keys: hs256_with_public_key(keys, time.time()),
    "wrong-iss": _signed(iss="https://evil.test"),
    "wrong-aud": _signed(aud="another-api"),
    "no-exp": _signed(exp=None),
    "expired": _relative(exp=-3600),
    "not-yet-valid": _relative(nbf=3600),
    "unknown-kid": lambda keys: mint(keys["rsa"], claims(time.time()), headers={"kid": "x"}),
    "tampered-signature": lambda keys: tampered_signature(keys, time.time()),
    "unknown-tenant": _signed(tenant="nowhere"),
    "garbage": lambda keys: "abc.def.ghi",
}


@pytest.mark.parametrize("route", ["predict", "read"])
@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attacks_are_401_problem_and_audited(
    client: httpx.AsyncClient,
    container: Container,
    keys: Keys,
    api_key: str,
    attack: str,
    route: str,
) -> None:
    headers = bearer(ATTACKS[attack](keys))
    if route == "predict":
        response = await client.post(PREDICT, json=applicant(), headers=headers)
    else:
        response = await client.get(f"/v1/predictions/pred_{'0' * 32}", headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:ombud:problem:unauthenticated"
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.reason, event.actor) == (
        Outcome.DENIED,
        "unauthenticated",
        ANONYMOUS,
    )


async def test_key_provider_down_is_401_not_500(
    client: httpx.AsyncClient, container: Container, jwks: JwksServer, keys: Keys, api_key: str
) -> None:
    jwks.status = 503
    response = await client.post(PREDICT, json=applicant(), headers=bearer(user_token(keys)))
    assert response.status_code == 401, response.text
    assert "unavailable" in response.json()["detail"]
    [event] = await audit_for(container, response.json()["request_id"])
    assert event.outcome is Outcome.DENIED


async def test_a_jwt_is_an_unknown_api_key_without_a_verifier(
    client: httpx.AsyncClient, container: Container, keys: Keys
) -> None:
    """With OIDC off (no verifier in the container) a JWT goes the API-key way, as before."""
    assert container.token_verifier is not None
    container.token_verifier = None
    token = user_token(keys)
    response = await client.get(f"/v1/predictions/pred_{'0' * 32}", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API key"
