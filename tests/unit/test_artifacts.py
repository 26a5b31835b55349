from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest

from ombud.demo import credit_model
from ombud.registry.schemas import ArtifactFormat
from ombud.serving.artifacts import ArtifactIntegrityError, LocalArtifactStore
from ombud.serving.loader import ArtifactRejected, load_classifier


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
    with pytest.raises(ArtifactIntegrityError, match="registered as"):
        store.read_verified(stored.uri, stored.sha256)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.read_verified("local:" + "0" * 64 + ".skops", "0" * 64)


@pytest.mark.parametrize(
    "uri", ["local:../etc/passwd", "local:a/b", "s3://bucket/x", "/etc/passwd"]
)
def test_uris_cannot_escape_the_store(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ArtifactIntegrityError):
        LocalArtifactStore(tmp_path).read_verified(uri, "0" * 64)


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
    with pytest.raises(ArtifactRejected, match="not supported"):
        load_classifier(b"onnx bytes", ArtifactFormat.ONNX)
