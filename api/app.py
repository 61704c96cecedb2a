"""The FastAPI application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.middleware.sessions import SessionMiddleware

from api.concurrency import ConcurrencyLimitMiddleware
from api.middleware import BodyLimitMiddleware, ProblemCORSMiddleware, RequestContextMiddleware
from api.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from api.routes import (
    accounts,
    admin,
    agent,
    auth,
    confirmations,
    health,
    me,
    mfa,
    oidc,
    report,
    self_service,
    staff,
    stream,
)
from api.sso import FLOW_COOKIE, FLOW_COOKIE_PATH, FLOW_SECONDS, SignInFlow, new_registry
from api.web import install_web
from service import metrics
from service.container import Services, open_services
from service.logs import configure_logging
from service.settings import Settings

log = logging.getLogger(__name__)

DESCRIPTION = """\
A caller signs in, generates a **support PIN** and reads it to a support agent, whose tooling
verifies it against the account being discussed. A PIN stops working after its TTL, each new
PIN replaces the previous one, and a PIN works once.

Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`.
"""


class State(TypedDict):
    """What the lifespan yields; Starlette hands it to every request as `request.state`."""

    services: Services
    # The browser sign-ins through the customers' and the staff's OpenID providers (None
    # unless configured).
    customer_sign_in: SignInFlow | None
    staff_sign_in: SignInFlow | None


def _sign_in_flows(settings: Settings, services: Services) -> State:
    registry = new_registry(services.redis)
    customer = staff = None
    if settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret:
        customer = SignInFlow(
            registry,
            "customer",
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret.get_secret_value(),
            scopes=settings.oidc_scopes,
        )
    if (
        settings.staff_oidc_issuer
        and settings.staff_oidc_client_id
        and settings.staff_oidc_client_secret
    ):
        staff = SignInFlow(
            registry,
            "staff",
            issuer=settings.staff_oidc_issuer,
            client_id=settings.staff_oidc_client_id,
            client_secret=settings.staff_oidc_client_secret.get_secret_value(),
            scopes=settings.staff_oidc_scopes,
        )
    return {"services": services, "customer_sign_in": customer, "staff_sign_in": staff}


def _operation_id(route: APIRoute) -> str:
    # The function name: stable, unique, and what generated clients call the method.
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; stores are opened by the lifespan, never at import time."""
    settings = settings or Settings()
    # Here rather than only in the CLI: each worker process builds its own app.
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        services = await open_services(settings)
        services.notices.start()  # every instance delivers notices (safe with many)
        try:
            yield _sign_in_flows(settings, services)
        finally:
            await services.close()
            metrics.mark_process_dead(os.getpid())

    app = FastAPI(
        title="Support PIN service",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        # The service's metrics are Prometheus (`/metrics`); FastAPI's OpenTelemetry would
        # look up the global providers on every request for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # /docs and /redoc are served by api/web.py from local files (no CDN), with a CSP.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    for router in (
        health.router,
        accounts.router,
        auth.router,
        oidc.router,
        me.router,
        stream.router,
        mfa.router,
        agent.router,
        confirmations.agent_router,
        confirmations.me_router,
        report.router,
        self_service.me_router,
        self_service.auth_router,
        staff.router,
        admin.router,
    ):
        app.include_router(router)
    install_web(app)
    # Outermost last: the request id and headers wrap every answer, 413s included.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_allow_origins:
        # Bearer tokens, no cookies: credentials stay off, so no origin can ride a session.
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["Retry-After", "X-Request-ID", "WWW-Authenticate"],
            allow_credentials=False,
            max_age=600,
        )
    if settings.oidc_issuer or settings.staff_sso_enabled:
        # Only a marker binding a provider sign-in to this browser (the flow's state is in
        # Redis): signed, sent to the sign-in routes only, Lax so the provider's redirect
        # back (a top-level GET from another site) carries it.
        app.add_middleware(
            SessionMiddleware,
            secret_key=settings.keys.sign_in_flow.hex(),
            session_cookie=FLOW_COOKIE,
            max_age=FLOW_SECONDS,
            path=FLOW_COOKIE_PATH,
            same_site="lax",
            https_only=settings.hsts_seconds > 0,
        )
    # Past the bound, a request is answered 503 before its body is read, inside the request
    # context below, so the refusal is logged and counted like any answer.
    app.add_middleware(
        ConcurrencyLimitMiddleware,
        max_requests=settings.http_max_concurrent_requests,
        max_streams=settings.http_max_streams,
    )
    extra_headers = []
    if settings.hsts_seconds:
        extra_headers.append(
            ("strict-transport-security", f"max-age={settings.hsts_seconds}; includeSubDomains")
        )
    app.add_middleware(RequestContextMiddleware, extra_headers=extra_headers)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with problem answers under their real media type."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    json_body = content.get("application/json", {})
                    # Problem and its subclasses (MfaRequiredProblem…) are problem documents.
                    if json_body.get("schema", {}).get("$ref", "").endswith("Problem"):
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
                    if code == "204":
                        response.pop("content", None)
        app.openapi_schema = schema
    return app.openapi_schema
