""" "This wasn't me": the link in a notice email locks support access to the account."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentUser, ServicesDep
from api.problems import problem_responses
from schemas.common import StrictModel

router = APIRouter(prefix="/v1", tags=["me"])


class ReportIn(StrictModel):
    token: str = Field(min_length=1, max_length=100, examples=["rpt_…"])


class ReportOut(BaseModel):
    status: str = Field(examples=["locked"])
    locked_for_seconds: int


@router.post(
    "/report",
    summary="This wasn't me: lock support access to the account of a notice's link",
    description=(
        "With the token from the link in a notice email (single use, valid 24 hours): the "
        "account's PIN is revoked, every session ends, and verifications and confirmations "
        "are refused for 24 hours. 400 `invalid_token` for a wrong, expired or used link."
    ),
    response_model=ReportOut,
    responses=problem_responses(400, 413, 422, 503),
)
async def report(body: ReportIn, services: ServicesDep) -> ReportOut:
    await services.reports.report(body.token)
    return ReportOut(status="locked", locked_for_seconds=24 * 3600)


@router.post(
    "/me/support-lock",
    summary="Wasn't you? Lock support access to this account",
    description=(
        "For a check or a call the customer does not recognise: the PIN is revoked, every "
        "session ends (this one too), and verifications and confirmations are refused for "
        "24 hours. The same as the link in a notice email."
    ),
    response_model=ReportOut,
    responses=problem_responses(401, 503),
)
async def lock_support_access(user: CurrentUser, services: ServicesDep) -> ReportOut:
    await services.reports.lock_support_access(user.account_id, how="page")
    return ReportOut(status="locked", locked_for_seconds=24 * 3600)
