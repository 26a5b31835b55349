"""Between HTTP and the chain: building a :class:`Call` from a request, answering from a result."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.responses import JSONResponse

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
    request: Request, *, route: str, target: str | None, client_ip: str | None
) -> Call:
    """Read the body (the size cap applies) and what the stages need from the request."""
    call = Call(
        route=route,
        request_id=request.state.request_id,
        client_ip=client_ip,
        target=target,
        credentials=credentials_of(request),
        headers={h: request.headers[h] for h in _CONTEXT_HEADERS if h in request.headers},
    )
    request.state.call = call
    call.body = await request.body()
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
