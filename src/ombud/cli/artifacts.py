"""``ombud artifacts put|verify|keygen``: publishing signed model artifacts, and checking them.

These commands touch the artifact store and key files only, never the database: a build
pipeline can publish an artifact with the signing key while the servers hold public keys alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ombud.cli.runtime import load_settings
from ombud.registry.schemas import ArtifactFormat
from ombud.serving.artifacts import ArtifactIntegrityError, ArtifactStore, build_artifact_store
from ombud.serving.loader import ArtifactRejected, load_classifier
from ombud.serving.signing import (
    ArtifactTrust,
    ArtifactTrustError,
    artifact_trust,
    generate_key_pair,
)

app = typer.Typer(
    help="Model artifacts: publish signed, verify, make signing keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _store() -> tuple[ArtifactStore, ArtifactTrust]:
    settings = load_settings()
    try:
        trust = artifact_trust(settings.serving, dev=settings.is_dev)
    except ArtifactTrustError as exc:
        raise _fail(str(exc)) from exc
    return build_artifact_store(settings.serving, trust), trust


@app.command()
def put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    artifact_format: Annotated[
        ArtifactFormat, typer.Option("--format", help="The artifact's format.")
    ] = ArtifactFormat.SKOPS,
) -> None:
    """Store FILE under its sha256, signed with OMBUD_SERVING__SIGNING_PRIVATE_KEY; print its
    uri and sha256 (JSON) for ``registry`` registration."""
    store, trust = _store()
    if trust.signer is None and trust.required:
        raise _fail(
            "no signing key: set OMBUD_SERVING__SIGNING_PRIVATE_KEY (servers refuse unsigned "
            "artifacts)"
        )
    data = file.read_bytes()
    try:
        # Refused here rather than at the first prediction: ombud would never load it.
        load_classifier(data, artifact_format)
    except ArtifactRejected as exc:
        raise _fail(f"{file} would not load: {exc}") from exc
    stored = store.put(data, artifact_format.value)
    typer.echo(
        json.dumps({"uri": stored.uri, "sha256": stored.sha256, "signed": trust.signer is not None})
    )


@app.command()
def verify(uri: str, sha256: str) -> None:
    """Check that URI holds bytes with SHA256, signed by a trusted key (exit 1 if not)."""
    store, _ = _store()
    try:
        store.read_verified(uri, sha256)
    except ArtifactIntegrityError as exc:
        typer.echo(f"refused: {exc.reason}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps({"uri": uri, "sha256": sha256, "verified": True}))


@app.command()
def keygen(directory: Annotated[Path, typer.Argument(file_okay=False)]) -> None:
    """Write a new P-256 signing key pair into DIRECTORY (the private key with mode 0600)."""
    try:
        private, public = generate_key_pair(directory)
    except FileExistsError as exc:
        raise _fail(f"{directory} already holds a signing key; it is never overwritten") from exc
    typer.echo(json.dumps({"private_key": str(private), "public_key": str(public)}))
