from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import CurrentAgent
from api.problems import problem_responses
from api.responses import json_response, utc
from schemas.agent import VerificationOut, VerificationRequest
from service.container import Services

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
    # A hot route: the services from the app state (one dependency node less) and the answer
    # serialised here (see api/responses.py); `VerificationOut` documents it.
    services: Services = request.app.state.services
    # Limits first: a refused request is not a guess and touches no PIN or failure counter.
    # The email -> account cache entry is read in the same round trip as the two limits.
    cached = await services.limits.verification(
        agent_id=agent.id, email=body.email, fetch=services.accounts.email_cache_key(body.email)
    )
    account_id = await services.accounts.id_by_email(body.email, cached)
    result = await services.pins.verify(account_id, body.pin.replace(" ", ""), agent)
    return json_response(
        {
            "valid": result.valid,
            "account_id": None if result.account_id is None else str(result.account_id),
            "verified_at": utc(result.verified_at),
        }
    )
