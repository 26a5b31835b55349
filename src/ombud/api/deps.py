"""Typed FastAPI dependencies: the only place ``Depends`` appears.

The request owns its unit of work: :func:`get_session` commits when the route function returns
(before the response is sent) and rolls back if it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.container import Container
from ombud.core.context import CallContext
from ombud.core.errors import Unauthenticated
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry.repository import RegistryRepository
from ombud.registry.service import RegistryService
from ombud.serving.service import PredictionService

_PURPOSE = r"^[a-z][a-z0-9_.\-]{0,63}$"
_OPAQUE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


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


def presented_credential(request: Request) -> str | None:
    """The API key or token from ``Authorization: Bearer`` or ``x-api-key``."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(detail="Authorization header must be 'Bearer <key>'")
        return token.strip()
    return request.headers.get("x-api-key") or None


async def get_principal(
    request: Request, container: ContainerDep, session: SessionDep
) -> Principal:
    token = presented_credential(request)
    if token is None:
        raise Unauthenticated(detail="no credentials: send 'Authorization: Bearer <key>'")
    identity = IdentityService(
        IdentityRepository(session), container.api_key_pepper, container.clock
    )
    principal = await identity.authenticate(token)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_call_context(
    request: Request,
    x_ombud_purpose: Annotated[str | None, Header(pattern=_PURPOSE)] = None,
    x_ombud_subject: Annotated[str | None, Header(pattern=_OPAQUE_ID)] = None,
    x_ombud_feature: Annotated[str | None, Header(pattern=_PURPOSE)] = None,
) -> CallContext:
    context = CallContext(
        request_id=request.state.request_id,
        purpose=x_ombud_purpose,
        subject=x_ombud_subject,
        feature=x_ombud_feature,
    )
    request.state.call_context = context
    return context


CallContextDep = Annotated[CallContext, Depends(get_call_context)]


def get_prediction_service(container: ContainerDep, session: SessionDep) -> PredictionService:
    return PredictionService(
        registry=RegistryService(RegistryRepository(session), container.clock),
        runtime=container.runtime,
        records=container.records,
        clock=container.clock,
    )


PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
