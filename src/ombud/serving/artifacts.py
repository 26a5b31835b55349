"""Content-addressed artifact storage. An artifact's name is its sha256; reads are verified."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SCHEME = "local:"


class ArtifactIntegrityError(Exception):
    """The stored bytes are missing or do not match the registered digest."""


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    uri: str
    sha256: str


class ArtifactStore(Protocol):
    def put(self, data: bytes, suffix: str) -> StoredArtifact: ...

    def read_verified(self, uri: str, sha256: str) -> bytes:
        """The artifact's bytes, after checking them against ``sha256``."""
        ...


class LocalArtifactStore:
    """Artifacts as files named by their digest under one directory."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def put(self, data: bytes, suffix: str) -> StoredArtifact:
        digest = hashlib.sha256(data).hexdigest()
        name = f"{digest}.{suffix}"
        path = self._root / name
        if not path.exists():
            self._root.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash never leaves a partial file under the final name.
            fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        return StoredArtifact(uri=_SCHEME + name, sha256=digest)

    def read_verified(self, uri: str, sha256: str) -> bytes:
        if not uri.startswith(_SCHEME) or "/" in uri or ".." in uri:
            raise ArtifactIntegrityError(f"not a local artifact uri: {uri!r}")
        path = self._root / uri.removeprefix(_SCHEME)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(f"artifact {uri} is missing") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {uri} has sha256 {actual}, registered as {sha256}"
            )
        return data
