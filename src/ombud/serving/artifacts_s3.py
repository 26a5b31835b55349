"""Artifacts in an S3-compatible bucket: ``s3://<bucket>/<prefix><sha256>.<suffix>``.

The same content addressing, signatures and verification as the local store
(:class:`ombud.serving.artifacts.ContentAddressedStore`); only where the blobs live differs.
Credentials come from boto3's standard chain (environment, shared config and credentials files,
container or instance role), never from ombud's settings. Every method blocks on the network:
call it from a worker thread, as :class:`ombud.serving.runtime.ModelRuntime` does.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ombud.serving.artifacts import STORE_UNAVAILABLE, ArtifactIntegrityError, ContentAddressedStore
from ombud.serving.signing import ArtifactTrust

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3ArtifactStore(ContentAddressedStore):
    """Artifacts as objects named by their digest under one bucket prefix.

    Args:
        bucket: The bucket; it must exist.
        prefix: Key prefix, empty or ending in ``/``.
        endpoint_url: An S3-compatible endpoint; None for AWS.
        region: The bucket's region; None: boto3's configured default.
        trust: What puts sign with and what reads are verified against.
        client: A ready boto3 S3 client (tests); built from the other arguments when None.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        trust: ArtifactTrust | None = None,
        client: Any = None,
    ) -> None:
        super().__init__(trust)
        self._bucket = bucket
        self._prefix = prefix
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            # Bounded waits: a load that hangs on S3 holds a worker thread and a caller.
            config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
        )

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _read(self, name: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key(name))
            body: bytes = response["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return None
            raise _unavailable(name, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(name, exc) from exc
        return body

    def _write(self, name: str, data: bytes) -> None:
        # One PUT: S3 never shows a partially written object under the key.
        self._client.put_object(Bucket=self._bucket, Key=self._key(name), Body=data)

    def _exists(self, name: str) -> bool:
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key(name))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND:
                return False
            raise _unavailable(name, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(name, exc) from exc
        return True

    def _uri(self, name: str) -> str:
        return f"s3://{self._bucket}/{self._key(name)}"

    def _name(self, uri: str) -> str | None:
        base = f"s3://{self._bucket}/{self._prefix}"
        return uri.removeprefix(base) if uri.startswith(base) else None


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(name: str, exc: Exception) -> ArtifactIntegrityError:
    """A read that failed for the store's sake (network, permissions), not the artifact's."""
    return ArtifactIntegrityError(f"cannot read {name} from S3: {exc}", reason=STORE_UNAVAILABLE)
