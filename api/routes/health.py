from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import ServicesDep
from schemas.health import HealthOut, ReadinessOut
from service import metrics

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


# Left out of the OpenAPI document: it is for Prometheus, not for API clients (and ops keep
# it off the public load balancer).
@router.get("/metrics", include_in_schema=False)
async def get_metrics() -> Response:
    body, media_type = metrics.exposition()
    return Response(body, media_type=media_type)
