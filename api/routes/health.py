from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.deps import ServicesDep
from schemas.health import HealthOut, ReadinessOut
from service import metrics
from service.errors import NotFound, Unauthenticated

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up (no I/O)", response_model=HealthOut)
async def healthz() -> HealthOut:
    return HealthOut()


@router.get(
    "/readyz",
    summary="Postgres and Redis answer",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "A store does not answer"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = await services.check_ready()
    ready = all(checks.values())
    body = ReadinessOut(status="ready" if ready else "unavailable", **checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


# Left out of the OpenAPI document: it is for Prometheus, not for API clients.
@router.get("/metrics", include_in_schema=False)
async def get_metrics(request: Request, services: ServicesDep) -> Response:
    """With METRICS_TOKEN, for its bearer only; else not on this port when METRICS_PORT
    serves it or in production, where this port is the public one."""
    settings = services.settings
    if settings.metrics_token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = settings.metrics_token.get_secret_value()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthenticated()
    elif settings.metrics_port is not None or settings.environment == "production":
        raise NotFound()
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)
