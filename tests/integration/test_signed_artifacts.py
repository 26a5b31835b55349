"""Only signed, unaltered artifacts are served: refusals answer 503 and leave an audit event."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ombud.app import create_app
from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.config import Settings
from ombud.container import Container
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion
from ombud.registry.service import RegistryService
from ombud.serving.artifacts import signature_name
from ombud.serving.signing import ArtifactSigner, generate_key_pair
from tests.integration.helpers import PREDICT, applicant, bearer, prediction_count

pytestmark = pytest.mark.anyio

KeyPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("other-keys"))


async def serving_version(container: Container) -> ModelVersion:
    async with container.sessions() as session:
        return await RegistryService(RegistryRepository(session), container.clock).serving_version(
            "credit-risk"
        )


def artifact_path(container: Container, version: ModelVersion) -> Path:
    return container.settings.serving.artifact_dir / version.artifact_uri.removeprefix("local:")


def signature_path(container: Container, version: ModelVersion) -> Path:
    return container.settings.serving.artifact_dir / signature_name(version.sha256)


@contextmanager
def replaced(path: Path, content: bytes | None) -> Iterator[None]:
    """``path`` holds ``content`` (None: is absent) inside the block, its old bytes after."""
    original = path.read_bytes()
    try:
        if content is None:
            path.unlink()
        else:
            path.write_bytes(content)
        yield
    finally:
        path.write_bytes(original)


async def rejections(container: Container) -> list[AuditEvent]:
    async with container.sessions() as session:
        links = await AuditRepository(session).find(AuditFilter(action="model.artifact_rejected"))
    return [link.event for link in links if link.event is not None]


async def assert_refused(
    client: httpx.AsyncClient, container: Container, api_key: str, reason: str
) -> None:
    version = await serving_version(container)
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))

    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["type"] == "urn:ombud:problem:model_unavailable"
    assert problem["detail"] == f"credit-risk v{version.version} failed verification: {reason}"
    assert await prediction_count(container) == 0
    [event] = await rejections(container)
    assert (event.action, event.outcome, event.reason) == (
        "model.artifact_rejected", Outcome.ERROR, reason,
    )  # fmt: skip
    assert event.resource == f"model:credit-risk:v{version.version}"
    assert event.detail["sha256"] == version.sha256
    assert event.detail["reason"] == reason


async def test_an_unsigned_artifact_is_refused_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    version = await serving_version(container)
    with replaced(signature_path(container, version), None):
        await assert_refused(client, container, api_key, "unsigned")


async def test_altered_bytes_are_refused_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    version = await serving_version(container)
    path = artifact_path(container, version)
    original = path.read_bytes()
    with replaced(path, original[:-1] + bytes([original[-1] ^ 1])):
        await assert_refused(client, container, api_key, "sha256 mismatch")


async def test_a_signature_by_an_untrusted_key_is_refused(
    client: httpx.AsyncClient, container: Container, api_key: str, other_keys: KeyPair
) -> None:
    version = await serving_version(container)
    data = artifact_path(container, version).read_bytes()
    foreign = ArtifactSigner(other_keys[0]).sign(data)
    with replaced(signature_path(container, version), foreign):
        await assert_refused(client, container, api_key, "signature does not verify")


async def test_a_second_trusted_key_is_accepted_while_keys_rotate(
    settings: Settings, container: Container, api_key: str, other_keys: KeyPair
) -> None:
    version = await serving_version(container)
    data = artifact_path(container, version).read_bytes()
    serving = settings.serving.model_copy(
        update={"signing_public_keys": [*settings.serving.signing_public_keys, other_keys[1]]}
    )
    rotated = create_app(settings.model_copy(update={"serving": serving}))
    new_signature = ArtifactSigner(other_keys[0]).sign(data)
    with replaced(signature_path(container, version), new_signature):
        async with rotated.router.lifespan_context(rotated):
            transport = httpx.ASGITransport(app=rotated)
            async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
                response = await http.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 200, response.text
    assert await rejections(container) == []
