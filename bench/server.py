"""The ombud app plus a bare echo route, served by uvicorn on one socket, for ``predict.py``.

The echo route sits on the same app, behind the same middleware, so "predict ÷ echo" isolates
what the governed path and the model add on top of the HTTP floor.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import uvicorn
from fastapi import Request, Response

from ombud.app import create_app
from ombud.config import Settings
from ombud.observability.logging import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    configure_logging("WARNING")
    app = create_app(Settings())

    @app.post("/bench/echo", include_in_schema=False)
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    print(f"listening {sock.getsockname()[1]}", flush=True)  # noqa: T201 - read by predict.py
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    main()
