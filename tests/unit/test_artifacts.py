from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from ombud.demo import credit_model
from ombud.registry.schemas import ArtifactFormat
from ombud.serving.artifacts import (
    BAD_SIGNATURE,
    INVALID_URI,
    SHA256_MISMATCH,
    UNSIGNED,
    ArtifactIntegrityError,
    LocalArtifactStore,
    signature_name,
)
from ombud.serving.loader import ArtifactRejected, load_classifier
from ombud.serving.signing import ArtifactSigner, ArtifactTrust, ArtifactVerifier, generate_key_pair

KeyPair = tuple[Path, Path]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return generate_key_pair(tmp_path_factory.mktemp("other-keys"))


def signed_store(root: Path, signer: Path | None, *trusted: Path) -> LocalArtifactStore:
    return LocalArtifactStore(
        root,
        ArtifactTrust(
            signer=ArtifactSigner(signer) if signer else None,
            verifier=ArtifactVerifier(trusted) if trusted else None,
            required=True,
        ),
    )


def test_artifacts_are_named_by_digest_and_read_back_verified(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    stored = store.put(b"model bytes", "skops")
    assert stored.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert stored.uri == f"local:{stored.sha256}.skops"
    assert store.read_verified(stored.uri, stored.sha256) == b"model bytes"
    assert store.put(b"model bytes", "skops") == stored


def test_altered_or_missing_artifacts_are_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    stored = store.put(b"model bytes", "skops")
    (tmp_path / stored.uri.removeprefix("local:")).write_bytes(b"model bytez")
    with pytest.raises(ArtifactIntegrityError, match="registered as") as caught:
        store.read_verified(stored.uri, stored.sha256)
    assert caught.value.reason == SHA256_MISMATCH
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.read_verified("local:" + "0" * 64 + ".skops", "0" * 64)


def test_publishing_again_repairs_an_artifact_altered_in_place(
    tmp_path: Path, keys: KeyPair
) -> None:
    store = signed_store(tmp_path, keys[0], keys[1])
    stored = store.put(b"model bytes", "skops")
    (tmp_path / stored.uri.removeprefix("local:")).write_bytes(b"model bytez")
    assert store.put(b"model bytes", "skops") == stored
    assert store.read_verified(stored.uri, stored.sha256) == b"model bytes"


@pytest.mark.parametrize(
    "uri", ["local:../etc/passwd", "local:a/b", "s3://bucket/x", "/etc/passwd"]
)
def test_uris_cannot_escape_the_store(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ArtifactIntegrityError) as caught:
        LocalArtifactStore(tmp_path).read_verified(uri, "0" * 64)
    assert caught.value.reason == INVALID_URI


def test_put_signs_and_reads_check_the_signature(tmp_path: Path, keys: KeyPair) -> None:
    store = signed_store(tmp_path, keys[0], keys[1])
    stored = store.put(b"model bytes", "skops")
    assert (tmp_path / signature_name(stored.sha256)).is_file()
    assert store.read_verified(stored.uri, stored.sha256) == b"model bytes"
    verify_only = signed_store(tmp_path, None, keys[1])  # a server holds no private key
    assert verify_only.read_verified(stored.uri, stored.sha256) == b"model bytes"


def test_unsigned_artifacts_are_refused_where_signatures_are_required(
    tmp_path: Path, keys: KeyPair
) -> None:
    stored = LocalArtifactStore(tmp_path).put(b"model bytes", "skops")
    with pytest.raises(ArtifactIntegrityError, match="unsigned") as caught:
        signed_store(tmp_path, None, keys[1]).read_verified(stored.uri, stored.sha256)
    assert caught.value.reason == UNSIGNED
    relaxed = LocalArtifactStore(
        tmp_path, ArtifactTrust(signer=None, verifier=ArtifactVerifier([keys[1]]), required=False)
    )
    assert relaxed.read_verified(stored.uri, stored.sha256) == b"model bytes"


def test_foreign_or_swapped_signatures_are_refused(
    tmp_path: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    stored = signed_store(tmp_path, other_keys[0], other_keys[1]).put(b"model bytes", "skops")
    store = signed_store(tmp_path, keys[0], keys[1])
    with pytest.raises(ArtifactIntegrityError) as caught:
        store.read_verified(stored.uri, stored.sha256)
    assert caught.value.reason == BAD_SIGNATURE
    # A trusted signature over other bytes, put in this artifact's place, does not verify.
    other = store.put(b"other bytes", "skops")
    signature = (tmp_path / signature_name(other.sha256)).read_bytes()
    (tmp_path / signature_name(stored.sha256)).write_bytes(signature)
    with pytest.raises(ArtifactIntegrityError, match="no trusted key"):
        store.read_verified(stored.uri, stored.sha256)


def test_republishing_re_signs_with_the_current_key(
    tmp_path: Path, keys: KeyPair, other_keys: KeyPair
) -> None:
    stored = signed_store(tmp_path, other_keys[0], other_keys[1]).put(b"model bytes", "skops")
    assert signed_store(tmp_path, keys[0], keys[1]).put(b"model bytes", "skops") == stored
    assert signed_store(tmp_path, None, keys[1]).read_verified(stored.uri, stored.sha256)


@pytest.mark.parametrize("suffix", ["sig", "", "a/b", "SKOPS"])
def test_the_signature_suffix_and_odd_suffixes_cannot_be_put(tmp_path: Path, suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        LocalArtifactStore(tmp_path).put(b"model bytes", suffix)
    assert list(tmp_path.iterdir()) == []


def test_the_demo_model_round_trips_through_skops() -> None:
    pipeline, metrics = credit_model.train()
    assert metrics["roc_auc"] > 0.7
    model = load_classifier(credit_model.to_skops(pipeline), ArtifactFormat.SKOPS)
    row = np.array(
        [[credit_model.EXAMPLE_APPLICANT[name] for name in credit_model.INPUTS]], dtype=object
    )
    assert model.predict_proba(row)[0, 1] == pytest.approx(pipeline.predict_proba(row)[0, 1])


def test_pickles_and_garbage_are_rejected() -> None:
    with pytest.raises(ArtifactRejected):
        load_classifier(pickle.dumps({"not": "allowed"}), ArtifactFormat.SKOPS)
    with pytest.raises(ArtifactRejected, match="unreadable ONNX graph"):
        load_classifier(b"onnx bytes", ArtifactFormat.ONNX)


def test_digest_only_reads_skip_the_signature_but_not_the_digest(
    tmp_path: Path, keys: KeyPair
) -> None:
    stored = LocalArtifactStore(tmp_path).put(b"golden rows", "json")
    store = signed_store(tmp_path, None, keys[1])
    assert store.read_digest_verified(stored.uri, stored.sha256) == b"golden rows"
    (tmp_path / stored.uri.removeprefix("local:")).write_bytes(b"golden rowz")
    with pytest.raises(ArtifactIntegrityError, match="registered as"):
        store.read_digest_verified(stored.uri, stored.sha256)
