"""ombud as an LLM gateway for benchmarks: one model alias in front of a fake upstream.

``prepare DIR`` creates a SQLite database and keyring in DIR, seeds the demo tenant and prints a
fresh API key; ``serve DIR --port P --upstream URL`` serves ombud (one uvicorn worker) with a
catalog whose deployment ``fake-model`` points at the OpenAI-compatible ``URL``. Rate limits stay
in the path, set so high they never bind; the response cache is off (the load generator repeats
one request), unless ``--cache``. ``--chain`` replaces the ``llm.chat`` stages (a per-layer
breakdown); ``--bare`` adds ``POST /bench/proxy``: the same request forwarded with the same
aiohttp client and no governance at all (the framework + client floor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
from pathlib import Path

import uvicorn
import uvloop
from fastapi import Request, Response

from ombud.app import create_app
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from ombud.observability.logging import configure_logging
from ombud.storage import migrate


def environment(work: Path, *, cache: bool = False) -> dict[str, str]:
    return {
        "OMBUD_DATABASE__URL": f"sqlite:///{work}/ombud.db",
        "OMBUD_CRYPTO__KEYRING_PATH": str(work / "keyring.json"),
        "OMBUD_SERVING__ARTIFACT_DIR": str(work / "artifacts"),
        "OMBUD_LLM__CATALOG_FILE": str(work / "catalog.json"),
        "OMBUD_LLM__CACHE_ENABLED": "true" if cache else "false",
        "OMBUD_NETWORK__ALLOWED_HOSTS": '["127.0.0.1"]',
        "OMBUD_NETWORK__ALLOW_PRIVATE_NETWORKS": "true",
        "OMBUD_NETWORK__ALLOWED_SCHEMES": '["http"]',
        "OMBUD_RATELIMIT__PER_KEY_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_KEY_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_TENANT_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_TENANT_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_IP_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_IP_BURST": "1000000",
        "OMBUD_RATELIMIT__PER_MODEL_RATE": "1000000",
        "OMBUD_RATELIMIT__PER_MODEL_BURST": "1000000",
        "OMBUD_RATELIMIT__MAX_CONCURRENT_PER_KEY": "4096",
        "OMBUD_LLM__TPM_PER_KEY": "1000000000",
        "OMBUD_SECURITY__API_KEY_CACHE_TTL_S": "5",
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }


def write_catalog(work: Path, upstream: str) -> None:
    catalog = {
        "providers": {"fake": {"kind": "openai_compatible", "base_url": upstream}},
        "deployments": [
            {
                "id": "fake-model",
                "provider": "fake",
                "model": "fake-model",
                "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
            }
        ],
    }
    (work / "catalog.json").write_text(json.dumps(catalog))


async def _prepare(work: Path) -> str:
    container = Container.create(Settings())
    try:
        await migrate.upgrade(container.engine)
        seeded = await seed_demo(container)
        # A budget that never binds, so the budget stage does its full work on every call.
        async with container.sessions() as session:
            from sqlalchemy import select

            from ombud.identity.tables import TenantRow

            tenant = (await session.scalars(select(TenantRow))).one()
        await container.llm.budgets.set_budget(
            tenant_id=tenant.id, scope="tenant", scope_id=tenant.id, period="month",
            hard_limit_micro_usd=10**15,
        )  # fmt: skip
        return seeded.api_key
    finally:
        await container.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    prepare = sub.add_parser("prepare")
    prepare.add_argument("dir", type=Path)
    serve = sub.add_parser("serve")
    serve.add_argument("dir", type=Path)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--upstream", default=os.environ.get("FAKE_UPSTREAM_BASE", ""))
    serve.add_argument("--chain", default=None, help="comma-separated llm.chat stages")
    serve.add_argument("--cache", action="store_true")
    serve.add_argument("--bare", action="store_true")
    args = parser.parse_args()
    work: Path = args.dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(environment(work, cache=getattr(args, "cache", False)))
    configure_logging("WARNING")
    if args.command == "prepare":
        write_catalog(work, "http://127.0.0.1:1/v1")
        print(asyncio.run(_prepare(work)))
        return
    write_catalog(work, args.upstream)
    if args.chain:
        os.environ["OMBUD_GATEWAY__CHAINS"] = json.dumps({"llm.chat": args.chain.split(",")})
    app = create_app(Settings())
    if args.bare:
        _add_bare_proxy(app, args.upstream)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    # uvloop, as `ombud serve` gets it through uvicorn's "auto" loop.
    uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))


def _add_bare_proxy(app: object, upstream: str) -> None:
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)

    @app.post("/bench/proxy", include_in_schema=False)
    async def proxy(request: Request) -> Response:
        client = request.app.state.container.llm.client
        status, _, body = await client.post(
            f"{upstream}/chat/completions", json.loads(await request.body()),
            headers={"Content-Type": "application/json"}, timeout_s=30, connect_timeout_s=5,
        )  # fmt: skip
        return Response(body, status_code=status, media_type="application/json")


if __name__ == "__main__":
    main()
