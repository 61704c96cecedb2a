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


def is_stream(path: str) -> bool:
    """A live event stream (Server-Sent Events): held open for as long as a page is."""
    return path == "/v1/me/stream" or (
        path.startswith("/v1/agent/confirmations/") and path.endswith("/stream")
    )


class ConcurrencyLimitMiddleware:
    """Answers 503 at once, without reading the body, to an HTTP request that arrives while
    `max_requests` others are being answered; plain ASGI, just inside the request context.
    Live event streams, which stay open and mostly wait, are bounded apart (`max_streams`):
    open pages never starve the requests that do work, nor the other way round."""

    def __init__(self, app: ASGIApp, *, max_requests: int, max_streams: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.max_streams = max_streams
        self.active = 0
        self.streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream = is_stream(scope["path"])
        if (self.streams >= self.max_streams) if stream else (self.active >= self.max_requests):
            await send({"type": "http.response.start", "status": 503, "headers": _BUSY_HEADERS})
            await send({"type": "http.response.body", "body": _BUSY_BODY})
            return
        if stream:
            self.streams += 1
        else:
            self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            if stream:
                self.streams -= 1
            else:
                self.active -= 1
