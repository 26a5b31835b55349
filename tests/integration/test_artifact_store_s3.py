"""The S3 artifact store over HTTP against a local S3 (moto's server on a loopback port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from ombud.app import create_app
from ombud.config import ServingSettings, Settings
from ombud.demo.seed import seed_demo
from ombud.serving.artifacts import (
    BAD_SIGNATURE,
    INVALID_URI,
    MISSING,
    SHA256_MISMATCH,
    STORE_UNAVAILABLE,
    UNSIGNED,
    ArtifactIntegrityError,
    ArtifactStore,
    build_artifact_store,
)
from ombud.serving.artifacts_s3 import S3ArtifactStore
from ombud.serving.signing import ArtifactTrust, artifact_trust, generate_key_pair
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, bearer

BUCKET = "models"
PREFIX = "ombud/artifacts/"
KeyPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials through boto3's standard chain, never the developer's own."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3(s3_endpoint: str) -> Iterator[Any]:
    """A raw client on an empty bucket, for what an attacker with bucket access would do."""
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("s3-keys"))


def s3_serving(endpoint: str, keys: KeyPair, tmp_path: Path) -> ServingSettings:
    return ServingSettings(
        artifact_dir=tmp_path / "artifacts",
        artifact_store="s3",
        s3_bucket=BUCKET,
        s3_prefix=PREFIX,
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        signing_private_key=keys[0],
        signing_public_keys=[keys[1]],
    )


@pytest.fixture
def store(s3: Any, s3_endpoint: str, keys: KeyPair, tmp_path: Path) -> ArtifactStore:
    serving = s3_serving(s3_endpoint, keys, tmp_path)
    return build_artifact_store(serving, artifact_trust(serving, dev=False))


def refusal(store: ArtifactStore, uri: str, sha256: str) -> str:
    with pytest.raises(ArtifactIntegrityError) as caught:
        store.read_verified(uri, sha256)
    return caught.value.reason


def test_put_stores_and_signs_under_the_digest(store: ArtifactStore, s3: Any) -> None:
    assert isinstance(store, S3ArtifactStore)
    stored = store.put(b"model bytes", "skops")

    assert stored.uri == f"s3://{BUCKET}/{PREFIX}{stored.sha256}.skops"
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert keys == {f"{PREFIX}{stored.sha256}.skops", f"{PREFIX}{stored.sha256}.sig"}
    assert store.read_verified(stored.uri, stored.sha256) == b"model bytes"
    assert store.put(b"model bytes", "skops") == stored


def test_missing_objects_and_foreign_uris_are_refused(store: ArtifactStore) -> None:
    digest = "0" * 64
    assert refusal(store, f"s3://{BUCKET}/{PREFIX}{digest}.skops", digest) == MISSING
    assert refusal(store, f"s3://other/{PREFIX}{digest}.skops", digest) == INVALID_URI
    assert refusal(store, f"s3://{BUCKET}/{digest}.skops", digest) == INVALID_URI
    assert refusal(store, f"local:{digest}.skops", digest) == INVALID_URI


def test_an_object_overwritten_in_the_bucket_is_refused(store: ArtifactStore, s3: Any) -> None:
    stored = store.put(b"model bytes", "skops")
    key = stored.uri.removeprefix(f"s3://{BUCKET}/")
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"model bytez")
    assert refusal(store, stored.uri, stored.sha256) == SHA256_MISMATCH


def test_unsigned_and_foreign_signed_objects_are_refused(
    store: ArtifactStore, s3: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    unsigned = S3ArtifactStore(bucket=BUCKET, prefix=PREFIX, endpoint_url=s3_endpoint)
    stored = unsigned.put(b"unsigned bytes", "skops")
    assert refusal(store, stored.uri, stored.sha256) == UNSIGNED

    intruder = generate_key_pair(tmp_path / "intruder")
    foreign = S3ArtifactStore(
        bucket=BUCKET, prefix=PREFIX, endpoint_url=s3_endpoint,
        trust=artifact_trust(s3_serving(s3_endpoint, intruder, tmp_path), dev=False),
    )  # fmt: skip
    stored = foreign.put(b"foreign bytes", "skops")
    assert refusal(store, stored.uri, stored.sha256) == BAD_SIGNATURE


def test_an_unreachable_store_is_a_refusal_not_a_crash(keys: KeyPair) -> None:
    down = S3ArtifactStore(
        bucket=BUCKET, endpoint_url="http://127.0.0.1:9", region="us-east-1",
        trust=ArtifactTrust(signer=None, verifier=None, required=False),
    )  # fmt: skip
    digest = "0" * 64
    assert refusal(down, f"s3://{BUCKET}/{digest}.skops", digest) == STORE_UNAVAILABLE


@pytest.mark.anyio
async def test_predictions_are_served_from_the_bucket(
    settings: Settings, s3: Any, s3_endpoint: str, keys: KeyPair, tmp_path: Path
) -> None:
    serving = s3_serving(s3_endpoint, keys, tmp_path)
    app = create_app(settings.model_copy(update={"serving": serving}))
    async with app.router.lifespan_context(app):
        container = app.state.container
        try:
            assert isinstance(container.artifacts, S3ArtifactStore)
            seed = await seed_demo(container)
            assert seed.model.artifact_uri.startswith(f"s3://{BUCKET}/{PREFIX}")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
                response = await http.post(PREDICT, json=applicant(), headers=bearer(seed.api_key))
            assert response.status_code == 200, response.text
        finally:
            await empty_database(container)
