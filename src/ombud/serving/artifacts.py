"""Content-addressed, signed artifact storage.

An artifact is stored under its sha256 (``<sha256>.<suffix>``) and its signature next to it
(``<sha256>.sig``). Every read checks both before handing bytes on: the bytes must hash to the
registered digest, and (where a verifier is configured) a trusted key must have signed exactly
those bytes. Stores are synchronous and blocking; callers run them in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.ids import new_id
from ombud.serving.signing import ArtifactTrust, SignatureError

if TYPE_CHECKING:
    from ombud.config import ServingSettings
    from ombud.core.clock import Clock
    from ombud.records.writer import RecordWriter
    from ombud.registry.schemas import ModelVersion

_SCHEME = "local:"
SIGNATURE_SUFFIX = "sig"
_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,16}$")
_SUFFIX = re.compile(r"^[a-z0-9]{1,16}$")

# Why a read was refused: stable strings, used in problem details and audit events.
MISSING = "missing"
INVALID_URI = "invalid uri"
SHA256_MISMATCH = "sha256 mismatch"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "signature does not verify"
STORE_UNAVAILABLE = "store unavailable"


class ArtifactIntegrityError(Exception):
    """The stored bytes are missing, altered, unsigned, or signed by no trusted key.

    ``reason`` is one of the module's reason strings (``sha256 mismatch``, ``unsigned``, ...).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    uri: str
    sha256: str


class ArtifactStore(Protocol):
    def put(self, data: bytes, suffix: str) -> StoredArtifact:
        """Store ``data`` under its digest (and sign it, where the store has a signer)."""
        ...

    def read_verified(self, uri: str, sha256: str) -> bytes:
        """The artifact's bytes, after checking them against ``sha256`` and their signature."""
        ...

    def read_digest_verified(self, uri: str, sha256: str) -> bytes:
        """The bytes checked against ``sha256`` only: for data that is not code to load (golden
        datasets), whose authenticity is the database row naming its digest. Never for models.
        """
        ...


def signature_name(sha256: str) -> str:
    """Where an artifact's signature is stored: named by the digest of the bytes it covers."""
    return f"{sha256}.{SIGNATURE_SUFFIX}"


class ContentAddressedStore(ABC):
    """Content addressing, signing and verification over a flat namespace of named blobs.

    Subclasses say how a blob is read and written and how a name becomes a URI; the rules of
    what may be read are all here, the same for every backend.
    """

    def __init__(self, trust: ArtifactTrust | None = None) -> None:
        self._trust = trust or ArtifactTrust(signer=None, verifier=None, required=False)

    @abstractmethod
    def _read(self, name: str) -> bytes | None:
        """The blob's bytes, or None when there is none."""

    @abstractmethod
    def _write(self, name: str, data: bytes) -> None:
        """Store the blob whole or not at all."""

    @abstractmethod
    def _exists(self, name: str) -> bool: ...

    @abstractmethod
    def _uri(self, name: str) -> str: ...

    @abstractmethod
    def _name(self, uri: str) -> str | None:
        """The blob name a URI of this store stands for; None when it is not one of ours."""

    def put(self, data: bytes, suffix: str) -> StoredArtifact:
        if not _SUFFIX.match(suffix) or suffix == SIGNATURE_SUFFIX:
            raise ValueError(f"not an artifact suffix: {suffix!r}")
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest}.{suffix}"
        # Signed first: a key that cannot sign leaves nothing half-published.
        signer = self._trust.signer
        signature = signer.sign(data) if signer is not None else None
        if not self._exists(name) or not self._holds(name, digest):
            # Absent, or present with other bytes (altered in place): publishing repairs it.
            self._write(name, data)
        if signature is not None:
            # Rewritten on every put, so re-publishing after a key rotation re-signs.
            self._write(signature_name(digest), signature)
        return StoredArtifact(uri=self._uri(name), sha256=digest)

    def _holds(self, name: str, digest: str) -> bool:
        stored = self._read(name)
        return stored is not None and hashlib.sha256(stored).hexdigest() == digest

    def read_verified(self, uri: str, sha256: str) -> bytes:
        data = self.read_digest_verified(uri, sha256)
        self._check_signature(uri, data, sha256)
        return data

    def read_digest_verified(self, uri: str, sha256: str) -> bytes:
        name = self._name(uri)
        if name is None or not _NAME.match(name):
            raise ArtifactIntegrityError(
                f"not an artifact uri of this store: {uri!r}", reason=INVALID_URI
            )
        data = self._read(name)
        if data is None:
            raise ArtifactIntegrityError(f"artifact {uri} is missing", reason=MISSING)
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {uri} has sha256 {actual}, registered as {sha256}",
                reason=SHA256_MISMATCH,
            )
        return data

    def _check_signature(self, uri: str, data: bytes, sha256: str) -> None:
        verifier = self._trust.verifier
        if verifier is None:
            return
        signature = self._read(signature_name(sha256))
        if signature is None:
            if self._trust.required:
                raise ArtifactIntegrityError(f"artifact {uri} is unsigned", reason=UNSIGNED)
            return
        try:
            verifier.verify(data, signature)
        except SignatureError as exc:
            raise ArtifactIntegrityError(
                f"artifact {uri}: no trusted key signed it ({exc})", reason=BAD_SIGNATURE
            ) from exc


class LocalArtifactStore(ContentAddressedStore):
    """Artifacts as files named by their digest under one directory."""

    def __init__(self, root: Path, trust: ArtifactTrust | None = None) -> None:
        super().__init__(trust)
        self._root = root

    def _read(self, name: str) -> bytes | None:
        try:
            return (self._root / name).read_bytes()
        except FileNotFoundError:
            return None

    def _write(self, name: str, data: bytes) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a partial file under the final name.
        fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".upload-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._root / name)

    def _exists(self, name: str) -> bool:
        return (self._root / name).exists()

    def _uri(self, name: str) -> str:
        return _SCHEME + name

    def _name(self, uri: str) -> str | None:
        return uri.removeprefix(_SCHEME) if uri.startswith(_SCHEME) else None


def build_artifact_store(serving: ServingSettings, trust: ArtifactTrust) -> ArtifactStore:
    """The configured store (``OMBUD_SERVING__ARTIFACT_STORE``), signing and verifying with
    ``trust``."""
    if serving.artifact_store == "s3":
        # Imported here: boto3 costs ~0.3 s to import, and only S3 deployments need it.
        from ombud.serving.artifacts_s3 import S3ArtifactStore

        assert serving.s3_bucket is not None  # the settings refuse s3 without a bucket
        return S3ArtifactStore(
            bucket=serving.s3_bucket,
            prefix=serving.s3_prefix,
            endpoint_url=serving.s3_endpoint_url,
            region=serving.s3_region,
            trust=trust,
        )
    return LocalArtifactStore(serving.artifact_dir, trust)


class ArtifactRejectionAudit:
    """Writes ``model.artifact_rejected`` audit events: the runtime's refusal hook.

    The refusal is not tied to a request: a version is loaded once for every caller, and each
    call that finds it unloadable answers 503 on its own audit event.
    """

    def __init__(self, records: RecordWriter, clock: Clock) -> None:
        self._records = records
        self._clock = clock

    async def __call__(self, version: ModelVersion, reason: str) -> None:
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor="ombud",
                action="model.artifact_rejected",
                resource=f"model:{version.model}:v{version.version}", outcome=Outcome.ERROR,
                reason=reason,
                detail={"reason": reason, "sha256": version.sha256,
                        "artifact_uri": version.artifact_uri},
            )
        ])  # fmt: skip
