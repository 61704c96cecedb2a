from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentAgent, ServicesDep
from api.problems import problem_responses
from schemas.agent import VerificationOut, VerificationRequest

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post(
    "/verifications",
    summary="Verify a caller's support PIN against the account being discussed",
    response_model=VerificationOut,
    responses=problem_responses(400, 401, 413, 422, 429, 503),
)
async def create_verification(
    body: VerificationRequest, agent: CurrentAgent, services: ServicesDep
) -> VerificationOut:
    # Limits first: a refused request is not a guess and touches no PIN or failure counter.
    # The email -> account cache entry is read in the same round trip as the two limits.
    cached = await services.limits.verification(
        agent_id=agent.id, email=body.email, fetch=services.accounts.email_cache_key(body.email)
    )
    account_id = await services.accounts.id_by_email(body.email, cached)
    result = await services.pins.verify(account_id, body.pin.replace(" ", ""), agent)
    return VerificationOut(
        valid=result.valid, account_id=result.account_id, verified_at=result.verified_at
    )
