"""``ombud policy``: work with policy bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ombud.policy.bundle import default_bundle_dir, load_bundle
from ombud.policy.errors import BundleError
from ombud.policy.rego_tests import run_bundle_tests

app = typer.Typer(help="Policy bundles: test them.", no_args_is_help=True)

BundleOption = Annotated[
    Path | None,
    typer.Option("--bundle", help="Bundle directory (default: the bundle shipped with ombud)."),
]


@app.command("test")
def run_tests(bundle: BundleOption = None) -> None:
    """Compile the bundle and run its Rego unit tests (``test_*`` rules in ``*_test.rego``)."""
    directory = bundle or default_bundle_dir()
    try:
        compiled = load_bundle(directory)
        outcomes = run_bundle_tests(directory)
    except BundleError as exc:
        typer.echo(f"bundle refused: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"bundle {directory} version {compiled.version[:12]}")
    for outcome in outcomes:
        mark = "PASS" if outcome.passed else "FAIL"
        detail = f" ({outcome.detail})" if outcome.detail else ""
        typer.echo(f"{mark} {outcome.file} {outcome.name}{detail}")
    failed = sum(not o.passed for o in outcomes)
    typer.echo(f"{len(outcomes) - failed} passed, {failed} failed")
    if failed or not outcomes:
        raise typer.Exit(1)
