"""Plain ASGI middleware (no BaseHTTPMiddleware): request ids, security headers, body limit."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from service import metrics
from service.logs import access_line, request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# Answers of the JSON API: nothing to render, frame or cache.
API_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
    ("cache-control", "no-store"),
)


class RequestContextMiddleware:
    """Gives each request an id (from `X-Request-ID` when well-formed), returns it, adds the
    security headers, counts the request in the metrics and writes one access-log line
    (method, route template, status, duration, request id: never a body, header or query).

    Every request passes through here, `/healthz` included, so it is written for speed: the
    headers are encoded once, added in one pass over the answer's own, and the log line skips
    the logging module (see `service.logs.access_line`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self._headers = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (*API_SECURITY_HEADERS, *extra_headers)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else secrets.token_hex(16)
        # Every log line written while answering, and every audit row, carries the request id.
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        recorded = False

        def record() -> None:
            # Once per request, before the last byte goes out: whoever saw the answer can
            # already see it in the metrics and the log.
            nonlocal recorded
            if recorded:
                return
            recorded = True
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            metrics.record_request(scope["method"], route, status, seconds)
            access_line(scope["method"], route, status, round(seconds * 1000, 2), request_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = self._with_headers(message.get("headers", ()), request_id)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                record()
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            record()  # no complete answer (an error or a client gone): still one line
            request_id_var.reset(token)

    def _with_headers(
        self, headers: Iterable[tuple[bytes, bytes]], request_id: str
    ) -> list[tuple[bytes, bytes]]:
        """The answer's headers, its own `X-Request-ID` replaced by ours, and each security
        header it does not set itself."""
        out = [(name, value) for name, value in headers if name.lower() != b"x-request-id"]
        present = {name.lower() for name, _ in out}
        out.append((b"x-request-id", request_id.encode("latin-1")))
        out += [header for header in self._headers if header[0] not in present]
        return out


def replay(first: Message, receive: Receive) -> Receive:
    """A `receive` that returns `first` (a message already read), then reads on."""
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return receive_again


def _route_template(scope: Scope) -> str:
    # The template (`/v1/me/support-pin`), never the raw path: bounded label values, and no
    # identifiers or query strings in metrics or logs.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with a 413 problem before any route sees them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        # Read the (bounded) body first, so a chunked upload cannot stream past the limit.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        first: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, replay(first, receive), send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": PROBLEM_TYPE_BASE + "payload_too_large",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"The request body exceeds {self.max_bytes} bytes.",
                "code": "payload_too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS allow-list, with a refused preflight answered as a problem document
    like every other 4xx of the API (Starlette answers it in plain text)."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        detail = bytes(response.body).decode()  # "Disallowed CORS origin, method"
        headers = {
            k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")
        }
        return JSONResponse(
            {
                "type": PROBLEM_TYPE_BASE + "cors_refused",
                "title": "Bad Request",
                "status": 400,
                "detail": detail + ".",
                "code": "cors_refused",
            },
            status_code=400,
            headers=headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
