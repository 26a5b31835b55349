"""``ombud``: serve, demo, migrate, apikeys. Commands call the same services as the API."""

from __future__ import annotations

import asyncio
import json
import shlex
import socket
import sys
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from ombud.app import create_app
from ombud.cli.apikeys import app as apikeys_app
from ombud.cli.artifacts import app as artifacts_app
from ombud.cli.audit import app as audit_app
from ombud.cli.crypto import app as crypto_app
from ombud.cli.policy import app as policy_app
from ombud.cli.predictions import app as predictions_app
from ombud.cli.providers import app as providers_app
from ombud.cli.registry import app as registry_app
from ombud.cli.runtime import load_settings, with_container
from ombud.cli.worker import worker
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.example import APPLICATION, EXAMPLE_APPLICANT
from ombud.observability.logging import configure_logging
from ombud.storage import migrate as migrations

app = typer.Typer(
    help="ombud: a governed AI backend.", no_args_is_help=True, pretty_exceptions_enable=False
)
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(artifacts_app, name="artifacts")
app.command("worker")(worker)
app.add_typer(crypto_app, name="crypto")
app.add_typer(audit_app, name="audit")
app.add_typer(policy_app, name="policy")
app.add_typer(predictions_app, name="predictions")
app.add_typer(providers_app, name="providers")
app.add_typer(registry_app, name="registry")

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on (0: any free port).")]


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""

    async def run(container: Container) -> None:
        await migrations.upgrade(container.engine)
        await container.regions.upgrade()

    with_container(run)
    typer.echo("database schema is up to date")


@app.command()
def serve(host: HostOption = None, port: PortOption = None) -> None:
    """Serve the API (run ``ombud migrate`` first)."""
    settings = load_settings()
    sock = _bind(host or settings.server.host, settings.server.port if port is None else port)
    bound_host, bound_port = sock.getsockname()[:2]
    scheme = "https" if settings.server.tls else "http"
    typer.echo(f"ombud is listening on {scheme}://{bound_host}:{bound_port}")
    _run_server(create_app(settings), sock, settings)


@app.command()
def demo(host: HostOption = None, port: PortOption = None) -> None:
    """Migrate, seed the demo (tenant, key, credit-risk model) and serve. Dev mode only."""
    settings = load_settings()
    if not settings.is_dev:
        raise typer.BadParameter("the demo runs in dev mode only (OMBUD_ENV=dev)")

    # deferred: training imports scikit-learn
    from ombud.demo.applicant import seed_applicant
    from ombud.demo.seed import seed_demo

    async def prepare(container: Container) -> tuple[str, str]:
        await migrations.upgrade(container.engine)
        await container.regions.upgrade()
        api_key = (await seed_demo(container)).api_key
        return api_key, await seed_applicant(container, api_key)

    api_key, applicant = with_container(prepare)
    sock = _bind(host or settings.server.host, settings.server.port if port is None else port)
    bound_host, bound_port = sock.getsockname()[:2]
    base = f"http://{bound_host}:{bound_port}"
    typer.echo(f"ombud demo is listening on {base}")
    typer.echo(f"  API docs (OpenAPI): {base}/docs")
    typer.echo(f"  demo API key (new on every start; older demo keys are revoked): {api_key}")
    typer.echo("  score an applicant:")
    typer.echo(_curl(base, api_key))
    typer.echo("  score the demo applicant, standing data read from the feature store:")
    typer.echo(_curl(base, api_key, subject=applicant))
    _run_server(create_app(settings), sock, settings)


@app.command("inference-server")
def inference_server(host: HostOption = None, port: PortOption = None) -> None:
    """Serve the local models to gateways in remote mode (OMBUD_SERVING__MODE=remote)."""
    from ombud.serving.inference_app import InferenceConfigError, create_inference_app

    settings = load_settings()
    try:
        application = create_inference_app(settings)
    except InferenceConfigError as exc:
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc
    serving = settings.serving
    sock = _bind(host or serving.inference_host, serving.inference_port if port is None else port)
    bound_host, bound_port = sock.getsockname()[:2]
    scheme = "https" if settings.server.tls else "http"
    typer.echo(f"ombud inference server is listening on {scheme}://{bound_host}:{bound_port}")
    _run_server(application, sock, settings)


def _curl(base: str, api_key: str, *, subject: str | None = None) -> str:
    features = EXAMPLE_APPLICANT
    subject_header = ""
    if subject is not None:
        features = {k: v for k, v in EXAMPLE_APPLICANT.items() if k in APPLICATION}
        subject_header = f" -H 'X-Ombud-Subject: {subject}'"
    body = json.dumps({"features": features}, separators=(",", ":"))
    return (
        f"curl -sS {base}/v1/models/credit-risk/predict"
        f" -H {shlex.quote('Authorization: Bearer ' + api_key)}"
        " -H 'Content-Type: application/json' -H 'X-Ombud-Purpose: credit_scoring'"
        f"{subject_header} -d {shlex.quote(body)}"
    )


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen before printing anything, so a printed URL is one that answers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this on Linux; without it a response written as headers then
    # body waits on the client's delayed ACK (~40 ms) under Nagle's algorithm.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        # Listening now lets connections queue until the server accepts them.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _run_server(application: FastAPI, sock: socket.socket, settings: Settings) -> None:
    """Serve the public app on ``sock`` (TLS when configured) and, with an internal listener
    configured, the internal app beside it in the same event loop."""
    configure_logging(json=not sys.stderr.isatty())
    server_settings = settings.server
    tls: dict[str, str] = {}
    if server_settings.tls_cert_file is not None and server_settings.tls_key_file is not None:
        tls = {
            "ssl_certfile": str(server_settings.tls_cert_file),
            "ssl_keyfile": str(server_settings.tls_key_file),
        }
    servers = [(_server(application, tls), sock)]
    internal: FastAPI | None = application.state.internal_app
    if internal is not None and server_settings.internal_port is not None:
        internal_sock = _bind(server_settings.internal_host, server_settings.internal_port)
        host, port = internal_sock.getsockname()[:2]
        typer.echo(f"ombud internal listener (metrics, health) on http://{host}:{port}")
        servers.append((_server(internal, {}), internal_sock))

    async def run_all() -> None:
        async def serve(server: uvicorn.Server, listener: socket.socket) -> None:
            try:
                await server.serve(sockets=[listener])
            finally:
                # One listener ending (a signal, a failed start-up) ends the others too.
                for other, _ in servers:
                    other.should_exit = True

        await asyncio.gather(*(serve(server, s) for server, s in servers))

    asyncio.run(run_all())


def _server(application: FastAPI, tls: dict[str, str]) -> uvicorn.Server:
    config = uvicorn.Config(
        application, lifespan="on", log_config=None, access_log=False, proxy_headers=False,
        ssl_certfile=tls.get("ssl_certfile"), ssl_keyfile=tls.get("ssl_keyfile"),
    )  # fmt: skip
    return uvicorn.Server(config)


def main() -> None:
    app()
