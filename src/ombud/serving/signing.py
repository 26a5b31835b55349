"""Artifact signatures: who published a model, checked before any of its bytes are loaded.

Signatures are OpenSSF model-signing bundles (a DSSE envelope over an in-toto statement of the
artifact's sha256) made with an elliptic-curve private key and checked against trusted public
keys. No network and no transparency log are involved: trust is the configured key list.

model-signing works on files, so the bytes are written to a private temporary directory under a
fixed name before they are signed or verified; the signed statement names no path, so neither
the directory nor the artifact's name matters. Everything here is blocking (hashing, file I/O,
ECDSA): call it from a worker thread.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ombud.config import ServingSettings

log = logging.getLogger(__name__)

_ARTIFACT_NAME = "artifact"
_SIGNATURE_NAME = "artifact.sig"
PRIVATE_KEY_NAME = "signing-key.pem"
PUBLIC_KEY_NAME = "signing-key.pub.pem"
_SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


class SignatureError(Exception):
    """The signature is missing, malformed, or made by no trusted key."""


class ArtifactTrustError(Exception):
    """The signing configuration cannot be used: a missing or unreadable key, or no trusted key
    where signatures are required. Raised while the process starts."""


def _load_public_key(path: Path) -> None:
    """Fail early, with the path in the message, on a key model-signing would refuse later."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArtifactTrustError(f"cannot read public key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _SUPPORTED_CURVES:
        raise ArtifactTrustError(f"{path} is not a P-256, P-384 or P-521 public key")


class ArtifactSigner:
    """Signs artifact bytes with one elliptic-curve private key (PEM, unencrypted).

    Raises:
        ArtifactTrustError: the key cannot be read or is not a supported EC key.
    """

    def __init__(self, private_key: Path) -> None:
        try:
            key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ArtifactTrustError(f"cannot read private key {private_key}: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or (
            key.curve.name not in _SUPPORTED_CURVES
        ):
            raise ArtifactTrustError(f"{private_key} is not a P-256, P-384 or P-521 private key")
        self._private_key = private_key

    def sign(self, data: bytes) -> bytes:
        """A signature bundle (JSON bytes) over ``data``."""
        from model_signing import signing  # deferred: its import costs ~0.5 s

        # model-signing's constructors carry no annotations; the call itself is typed.
        config = signing.Config().use_elliptic_key_signer(  # type: ignore[no-untyped-call]
            private_key=self._private_key
        )
        with tempfile.TemporaryDirectory(prefix="ombud-sign-") as tmp:
            directory = Path(tmp)
            (directory / _ARTIFACT_NAME).write_bytes(data)
            config.sign(directory / _ARTIFACT_NAME, directory / _SIGNATURE_NAME)
            return (directory / _SIGNATURE_NAME).read_bytes()


class ArtifactVerifier:
    """Checks signature bundles against a set of trusted public keys.

    More than one key is trusted so that keys can rotate: artifacts signed by the old key keep
    loading while the new one signs, until the old key is taken out of the list.

    Raises:
        ArtifactTrustError: no key given, or a key cannot be read.
    """

    def __init__(self, public_keys: Sequence[Path]) -> None:
        if not public_keys:
            raise ArtifactTrustError("an artifact verifier needs at least one public key")
        for path in public_keys:
            _load_public_key(path)
        self._public_keys = tuple(public_keys)

    @property
    def public_keys(self) -> tuple[Path, ...]:
        return self._public_keys

    def verify(self, data: bytes, signature: bytes) -> None:
        """Return when one trusted key's signature covers exactly ``data``.

        Raises:
            SignatureError: no trusted key verifies the signature over these bytes.
        """
        from model_signing import verifying  # deferred: its import costs ~0.5 s

        with tempfile.TemporaryDirectory(prefix="ombud-verify-") as tmp:
            directory = Path(tmp)
            (directory / _ARTIFACT_NAME).write_bytes(data)
            (directory / _SIGNATURE_NAME).write_bytes(signature)
            failures: list[str] = []
            for key in self._public_keys:
                config = verifying.Config().use_elliptic_key_verifier(  # type: ignore[no-untyped-call]
                    public_key=key
                )
                try:
                    config.verify(directory / _ARTIFACT_NAME, directory / _SIGNATURE_NAME)
                except Exception as exc:  # noqa: BLE001 - any failure means "not this key"
                    failures.append(f"{key.name}: {exc}")
                else:
                    return
        log.debug("signature verification failed: %s", failures)
        raise SignatureError("signature does not verify")


@dataclass(frozen=True, slots=True)
class ArtifactTrust:
    """What a process signs with and what it trusts, resolved from settings.

    ``verifier`` None means signatures are not checked; ``required`` means an artifact without
    a signature is refused (with it False, a signature that is present is still checked).
    """

    signer: ArtifactSigner | None
    verifier: ArtifactVerifier | None
    required: bool


def generate_key_pair(directory: Path) -> tuple[Path, Path]:
    """Write a new P-256 key pair (PEM) into ``directory``: the private key with mode 0600.

    Returns:
        The private key's path and the public key's path.

    Raises:
        FileExistsError: a private key is already there (it is never overwritten).
    """
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL: two processes starting at once never both write (and one lose) a key.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private_path, public_path


def dev_key_pair(directory: Path) -> tuple[Path, Path]:
    """The dev-mode key pair in ``directory``, generated on first use and reused after."""
    private_path, public_path = directory / PRIVATE_KEY_NAME, directory / PUBLIC_KEY_NAME
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    try:
        generated = generate_key_pair(directory)
    except FileExistsError:
        return private_path, public_path  # another process made it first
    log.warning("generated a dev artifact-signing key pair in %s", directory)
    return generated


def dev_key_dir(serving: ServingSettings) -> Path:
    """Where dev mode keeps its generated key pair: ``signing/`` beside the artifact folder."""
    return serving.artifact_dir.parent / "signing"


def artifact_trust(serving: ServingSettings, *, dev: bool) -> ArtifactTrust:
    """The process's signer and verifier (``OMBUD_SERVING__SIGNING_*``).

    In dev mode with no key configured at all, a key pair is generated once (see
    :func:`dev_key_dir`) and used to sign and verify, so a fresh checkout serves the demo.

    Raises:
        ArtifactTrustError: signatures are required and no public key is configured (outside
            dev mode), or a configured key cannot be used.
    """
    public_keys = list(serving.signing_public_keys)
    private_key = serving.signing_private_key
    if dev and not public_keys and private_key is None:
        private_key, public_key = dev_key_pair(dev_key_dir(serving))
        public_keys = [public_key]
    if serving.require_signatures and not public_keys:
        raise ArtifactTrustError(
            "OMBUD_SERVING__SIGNING_PUBLIC_KEYS names no public key, and signatures are "
            "required (OMBUD_SERVING__REQUIRE_SIGNATURES)"
        )
    return ArtifactTrust(
        signer=ArtifactSigner(private_key) if private_key is not None else None,
        verifier=ArtifactVerifier(public_keys) if public_keys else None,
        required=serving.require_signatures,
    )
