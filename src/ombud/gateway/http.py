"""Between HTTP and the chain: building a :class:`Call` from a request, answering from a result."""

from __future__ import annotations

import anyio
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from ombud.core.errors import RequestTimeout
from ombud.gateway.call import Call
from ombud.gateway.chain import ChainResult, Completed
from ombud.identity.credentials import PresentedCredentials

_CONTEXT_HEADERS = ("x-ombud-purpose", "x-ombud-subject", "x-ombud-feature")


def credentials_of(request: Request) -> PresentedCredentials:
    return PresentedCredentials(
        authorization=request.headers.get("authorization"),
        api_key=request.headers.get("x-api-key"),
    )


async def call_from_request(
    request: Request,
    *,
    route: str,
    target: str | None,
    client_ip: str | None,
    body_timeout_s: float,
) -> Call:
    """Read the body (size cap and time limit apply) and what the stages need from the request."""
    call = Call(
        route=route,
        request_id=request.state.request_id,
        client_ip=client_ip,
        target=target,
        credentials=credentials_of(request),
        headers={h: request.headers[h] for h in _CONTEXT_HEADERS if h in request.headers},
    )
    request.state.call = call
    try:
        with anyio.fail_after(body_timeout_s):
            call.body = await request.body()
    except TimeoutError:
        raise RequestTimeout(
            detail=f"the body did not arrive within {body_timeout_s:g} s"
        ) from None
    return call


def answer(call: Call, result: ChainResult, response: Response) -> Response | None:
    """Copy the call's response headers; a pending review becomes 202 with its id."""
    if isinstance(result, Completed):
        response.headers.update(call.response_headers)
        return None
    return JSONResponse(
        {"status": "pending_review", "review_id": result.review_id, "reason": result.reason},
        status_code=202,
        headers={**call.response_headers, "Location": f"/v1/reviews/{result.review_id}"},
    )
