from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentAgent, ServicesDep
from api.problems import problem_responses
from schemas.agent import SubjectVerificationRequest, VerificationOut, VerificationRequest

router = APIRouter(prefix="/v1/agent", tags=["agent"])


@router.post(
    "/verifications",
    summary="Verify a caller's support PIN against the account being discussed",
    response_model=VerificationOut,
    description=(
        "For agent tooling with an API key, and for staff with the `agent` role or above. "
        "`case_ref` (optional) is kept in the audit log and shown to the customer."
    ),
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
)
async def create_verification(
    body: VerificationRequest | SubjectVerificationRequest,
    agent: CurrentAgent,
    services: ServicesDep,
) -> VerificationOut:
    if isinstance(body, SubjectVerificationRequest):
        checked = await services.verifications.verify_pin_by_subject(
            agent, body.subject, body.pin, body.case_ref
        )
    else:
        checked = await services.verifications.verify_pin(
            agent, body.email, body.pin, body.case_ref
        )
    result = checked.verification
    return VerificationOut(
        valid=result.valid,
        account_id=result.account_id,
        verified_at=result.verified_at,
        email=checked.email,
        subject=checked.subject,
    )
