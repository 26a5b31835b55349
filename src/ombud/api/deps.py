"""Typed FastAPI dependencies: the only place ``Depends`` appears.

The request owns its unit of work: :func:`get_session` commits when the route function returns
(before the response is sent) and rolls back if it raises. AI calls do not use these: they run
through the gateway's chain (``GatewayDep``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.container import Container
from ombud.gateway.assembly import Gateway
from ombud.gateway.http import credentials_of
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.ratelimit import client_ip

# The dependencies below are ``async`` although they never await: FastAPI runs a plain ``def``
# dependency in a worker thread, a hop that costs more than the function itself.


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def get_client_ip(request: Request, container: ContainerDep) -> str | None:
    """The client's address; forwarding headers count only from configured trusted proxies."""
    address = client_ip(
        request.client.host if request.client else None,
        request.scope["headers"],
        container.trusted_proxies,
        container.settings.ratelimit.client_ip_header,
    )
    return str(address) if address is not None else None


ClientIpDep = Annotated[str | None, Depends(get_client_ip)]


async def get_session(container: ContainerDep) -> AsyncIterator[AsyncSession]:
    async with container.sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(
    request: Request, container: ContainerDep, session: SessionDep
) -> Principal:
    """Authenticate a control-plane request (AI calls authenticate in their chain)."""
    token = credentials_of(request).token()
    identity = IdentityService(
        IdentityRepository(session),
        container.api_key_pepper,
        container.clock,
        tokens=container.token_verifier,
        on_revoke=container.api_key_cache.forget_all,
    )
    principal = await identity.authenticate(token)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
