from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from api.deps import CurrentAgent
from api.problems import problem_responses
from api.responses import json_response, utc
from schemas.agent import VerificationOut, VerificationRequest
from service.container import Services
from service.models import Agent

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post(
    "/verifications",
    summary="Verify a caller's support PIN against the account being discussed",
    response_model=VerificationOut,
    responses=problem_responses(400, 401, 413, 422, 429, 503),
)
async def create_verification(
    body: VerificationRequest, agent: CurrentAgent, request: Request
) -> Response:
    # A hot route: requests of the ordinary shape are answered by `api.hot` with the same
    # `verify_pin`; this is the route of the OpenAPI document and of every other request.
    services: Services = request.app.state.services
    return json_response(await verify_pin(services, agent, body))


async def verify_pin(services: Services, agent: Agent, body: VerificationRequest) -> dict[str, Any]:
    """The work and the answer (a `VerificationOut`, serialised by the caller with orjson:
    see api/responses.py) of a verification."""
    # Limits first, then the account and its PIN: in one Redis step where it can be.
    result = await services.verifications.verify(agent, body.email, body.pin.replace(" ", ""))
    return {
        "valid": result.valid,
        "account_id": None if result.account_id is None else str(result.account_id),
        "verified_at": utc(result.verified_at),
    }
