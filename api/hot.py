"""Fast paths for the two routes of every support call: PIN issuance and agent verification.

FastAPI's handling of a request (matching it against every route, the dependency graph, the
request and response objects, two exception-handling layers) costs about as much CPU as the
work of these routes. A request of the ordinary shape (a bearer credential and, for a
verification, a JSON body that validates) is answered here instead, by the same functions
the routes call (`issue_pin`, `verify_pin`), with errors rendered by the same problem
renderer. Anything else (no or an odd Authorization header, another content type, a body
that does not parse or validate, another method, a root path) goes on untouched to FastAPI,
whose route answers it exactly as before (its 401, 405, 415 or 422 problem documents).

The routes stay the one definition of the contract in the OpenAPI document;
`tests/test_hot_paths.py` sends the same requests, ordinary and odd, to an app with and one
without this layer and checks that the answers agree.

It sits inside `RequestContextMiddleware` (request id, security headers, access log,
metrics) and `BodyLimitMiddleware` (the body is bounded and arrives in one message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import replay
from api.problems import service_error_response
from api.routes.agent import create_verification, verify_pin
from api.routes.agent import router as agent_router
from api.routes.me import create_support_pin, issue_pin
from api.routes.me import router as me_router
from schemas.agent import VerificationRequest
from service.container import Services
from service.errors import ServiceError, Unauthenticated

_JSON_HEADERS = [(b"content-type", b"application/json")]

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


def _route(router_routes: list[Any], endpoint: Callable[..., Any]) -> APIRoute:
    for route in router_routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route
    raise LookupError(endpoint.__name__)


class HotPaths:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        issue = _route(me_router.routes, create_support_pin)
        verify = _route(agent_router.routes, create_verification)
        self._issue_route = issue
        self._verify_route = verify
        self._handlers: dict[str, Handler] = {
            issue.path: self._issue,
            verify.path: self._verify,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            handler = self._handlers.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _issue(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _bearer(scope)
        if token is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self._issue_route  # the access log and metrics name the template
        services: Services = scope["app"].state.services
        try:
            # The session is checked inside the issue script (one round trip, not two).
            claim = services.sessions.claim(token)
            if claim is None:
                raise Unauthenticated()
            answer = await issue_pin(services, claim.account_id, session_key=claim.redis_key)
        except ServiceError as exc:
            await service_error_response(exc)(scope, receive, send)
            return
        await _send_json(send, 201, answer)

    async def _verify(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _bearer(scope)
        if key is None or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        message = await receive()
        body = _request_body(message)
        request = _verification_request(body) if body is not None else None
        if request is None:
            await self.app(scope, replay(message, receive), send)
            return
        scope["route"] = self._verify_route
        services: Services = scope["app"].state.services
        try:
            agent = await services.agents.authenticate(key)
            if agent is None:
                raise Unauthenticated()
            answer = await verify_pin(services, agent, request)
        except ServiceError as exc:
            await service_error_response(exc)(scope, receive, send)
            return
        await _send_json(send, 200, answer)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _bearer(scope: Scope) -> str | None:
    """The credential of `Authorization: Bearer …`, parsed as FastAPI's bearer schemes
    parse it; None sends the request the long way (which answers its 401)."""
    raw = _header(scope, b"authorization")
    if raw is None:
        return None
    # Latin-1, as Starlette decodes headers (it decodes every byte).
    scheme, credentials = get_authorization_scheme_param(raw.decode("latin-1"))
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def _is_json(scope: Scope) -> bool:
    raw = _header(scope, b"content-type")
    if raw is None:
        return False
    media_type = raw.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


def _request_body(message: Message) -> bytes | None:
    if message["type"] != "http.request" or message.get("more_body", False):
        return None
    body = message.get("body", b"")
    return body if isinstance(body, bytes) else None


def _verification_request(body: bytes) -> VerificationRequest | None:
    """The body validated as FastAPI would (JSON, then the model in Python mode), or None.
    orjson is stricter than the `json` module FastAPI uses (no NaN, no lone surrogates, no
    integers past 64 bits): whatever it refuses goes the long way and is judged there."""
    try:
        return VerificationRequest.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        return None


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    body = orjson.dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
