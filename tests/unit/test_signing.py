from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from ombud.config import ServingSettings
from ombud.serving.signing import (
    PRIVATE_KEY_NAME,
    ArtifactSigner,
    ArtifactTrustError,
    ArtifactVerifier,
    SignatureError,
    artifact_trust,
    dev_key_pair,
    generate_key_pair,
)

KeyPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("other-keys"))


def test_a_signature_verifies_for_exactly_the_signed_bytes(keys: KeyPair) -> None:
    signature = ArtifactSigner(keys[0]).sign(b"model bytes")
    verifier = ArtifactVerifier([keys[1]])

    verifier.verify(b"model bytes", signature)
    with pytest.raises(SignatureError, match="does not verify"):
        verifier.verify(b"model bytez", signature)


def test_a_signature_by_an_untrusted_key_is_refused(keys: KeyPair, other_keys: KeyPair) -> None:
    signature = ArtifactSigner(other_keys[0]).sign(b"model bytes")
    with pytest.raises(SignatureError):
        ArtifactVerifier([keys[1]]).verify(b"model bytes", signature)


def test_every_trusted_key_is_accepted_while_keys_rotate(
    keys: KeyPair, other_keys: KeyPair
) -> None:
    verifier = ArtifactVerifier([keys[1], other_keys[1]])
    for private, _ in (keys, other_keys):
        verifier.verify(b"model bytes", ArtifactSigner(private).sign(b"model bytes"))


def test_malformed_and_altered_signatures_are_refused(keys: KeyPair) -> None:
    verifier = ArtifactVerifier([keys[1]])
    with pytest.raises(SignatureError):
        verifier.verify(b"model bytes", b"not a bundle")
    bundle = json.loads(ArtifactSigner(keys[0]).sign(b"model bytes"))
    other = json.loads(ArtifactSigner(keys[0]).sign(b"other bytes"))
    # A valid envelope for other bytes under this bundle's signature: the splice must fail.
    bundle["dsseEnvelope"]["payload"] = other["dsseEnvelope"]["payload"]
    with pytest.raises(SignatureError):
        verifier.verify(b"other bytes", json.dumps(bundle).encode())


def test_generated_private_keys_are_private_and_never_overwritten(tmp_path: Path) -> None:
    private, public = generate_key_pair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PUBLIC KEY" in public.read_bytes()
    with pytest.raises(FileExistsError):
        generate_key_pair(tmp_path)
    assert dev_key_pair(tmp_path) == (private, public)


def test_unusable_keys_are_refused_at_start(tmp_path: Path, keys: KeyPair) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ArtifactTrustError, match="garbage.pem"):
        ArtifactVerifier([garbage])
    with pytest.raises(ArtifactTrustError):
        ArtifactVerifier([])
    with pytest.raises(ArtifactTrustError, match="private key"):
        ArtifactSigner(keys[1])
    with pytest.raises(ArtifactTrustError):
        ArtifactVerifier([keys[0]])


def test_dev_mode_generates_one_key_pair_beside_the_artifacts(tmp_path: Path) -> None:
    serving = ServingSettings(artifact_dir=tmp_path / "artifacts")
    first = artifact_trust(serving, dev=True)
    second = artifact_trust(serving, dev=True)

    assert first.signer is not None
    assert first.verifier is not None
    assert second.verifier is not None
    assert first.required
    assert first.verifier.public_keys == second.verifier.public_keys
    assert (tmp_path / "signing" / PRIVATE_KEY_NAME).exists()
    first.verifier.verify(b"x", first.signer.sign(b"x"))


def test_outside_dev_required_signatures_need_a_public_key(tmp_path: Path) -> None:
    serving = ServingSettings(artifact_dir=tmp_path / "artifacts")
    with pytest.raises(ArtifactTrustError, match="OMBUD_SERVING__SIGNING_PUBLIC_KEYS"):
        artifact_trust(serving, dev=False)
    assert not (tmp_path / "signing").exists()

    relaxed = artifact_trust(serving.model_copy(update={"require_signatures": False}), dev=False)
    assert (relaxed.signer, relaxed.verifier, relaxed.required) == (None, None, False)


def test_configured_keys_are_used_as_given(tmp_path: Path, keys: KeyPair) -> None:
    serving = ServingSettings(artifact_dir=tmp_path / "artifacts", signing_public_keys=[keys[1]])
    trust = artifact_trust(serving, dev=True)
    assert trust.signer is None  # a server that only verifies holds no private key
    assert trust.verifier is not None
    assert trust.verifier.public_keys == (keys[1],)
    assert not (tmp_path / "signing").exists()
