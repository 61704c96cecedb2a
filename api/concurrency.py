"""A bound on the requests one process answers at once (HTTP_MAX_CONCURRENT_REQUESTS)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE

_BUSY_BODY = json.dumps(
    {
        "type": PROBLEM_TYPE_BASE + "unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "The service is answering as many requests as it can; try again shortly.",
        "code": "unavailable",
    }
).encode()
_BUSY_HEADERS = [
    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
    (b"content-length", str(len(_BUSY_BODY)).encode()),
    (b"retry-after", b"1"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    # The server closes the connection after this answer, so a refused client holds nothing.
    (b"connection", b"close"),
]


class ConcurrencyLimitMiddleware:
    """Answers 503 at once, without reading the body, to an HTTP request that arrives while
    `max_requests` others are being answered; plain ASGI, just inside the request context."""

    def __init__(self, app: ASGIApp, *, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
            await send({"type": "http.response.body", "body": _BUSY_BODY})
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
