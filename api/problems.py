"""RFC 9457 problem documents: one place that renders every error answer."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from schemas.common import Problem
from service.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "tag:support-pin,2026:problem:"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting problem answers of a route (and their headers)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Problem, "description": HTTPStatus(status).phrase}
        if status in _DOCUMENTED_HEADERS:
            entry["headers"] = _DOCUMENTED_HEADERS[status]
        responses[status] = entry
    return responses


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_DOCUMENTED_HEADERS: dict[int, dict[str, Any]] = {429: _RETRY_AFTER, 503: _RETRY_AFTER}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only where and what: never the submitted value, which may be a password or a PIN.
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in exc.errors()
    ]


def service_error_response(exc: ServiceError) -> JSONResponse:
    """The answer to a `ServiceError`."""
    return problem_response(
        exc.status, exc.code, exc.detail, title=exc.title, headers=exc.headers, **exc.extra
    )


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    return service_error_response(cast(ServiceError, exc))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    errors = _validation_errors(cast(RequestValidationError, exc))
    if any(error["type"] == "json_invalid" for error in errors):
        detail = "The request body is not valid JSON."
    else:
        detail = "The request has missing or invalid fields; see `errors`."
    return problem_response(422, "validation_error", detail, title="Invalid request", errors=errors)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's own 405 names only the first
    route that matched the path, which hides the others (found by schemathesis)."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, error)  # registered for this class only
    status = exc.status_code
    code = _STATUS_CODES.get(status, "error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    headers = dict(getattr(exc, "headers", None) or {})
    if status == 405:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(status, code, detail, headers=headers or None)


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    # A bug: logged with its traceback (which never holds request bodies), answered plainly.
    log.error("unhandled error", exc_info=exc)
    return problem_response(500, "internal_error", "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
