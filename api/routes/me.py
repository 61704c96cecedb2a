from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.deps import CurrentUser, ServicesDep, UserSessionClaim
from api.problems import problem_responses
from schemas.accounts import AccountOut
from schemas.pins import PinEventOut, PinEventsOut, PinOut, PinStatusOut

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get(
    "",
    summary="The signed-in account",
    response_model=AccountOut,
    responses=problem_responses(401, 503),
)
async def get_me(user: CurrentUser, services: ServicesDep) -> AccountOut:
    return AccountOut.of(await services.accounts.get(user.account_id))


@router.post(
    "/support-pin",
    summary="Generate a support PIN; the previous one stops working",
    status_code=status.HTTP_201_CREATED,
    response_model=PinOut,
    responses=problem_responses(401, 429, 503),
)
async def create_support_pin(session: UserSessionClaim, services: ServicesDep) -> PinOut:
    issued = await services.pins.issue_pin(session)
    return PinOut(pin=issued.pin, expires_at=issued.expires_at, ttl_seconds=issued.ttl_seconds)


@router.get(
    "/support-pin",
    summary="Whether a support PIN is active, and until when (never the PIN)",
    response_model=PinStatusOut,
    responses=problem_responses(401, 503),
)
async def get_support_pin(user: CurrentUser, services: ServicesDep) -> PinStatusOut:
    state = await services.pins.status(user.account_id)
    return PinStatusOut(active=state.active, expires_at=state.expires_at)


@router.delete(
    "/support-pin",
    summary="Revoke the active support PIN",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 503),
)
async def delete_support_pin(user: CurrentUser, services: ServicesDep) -> None:
    await services.pins.revoke(user.account_id)


@router.get(
    "/support-pin/events",
    summary="Support PIN activity on this account, newest first",
    response_model=PinEventsOut,
    responses=problem_responses(401, 422, 503),
)
async def list_support_pin_events(
    user: CurrentUser,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many events, newest first")] = 50,
) -> PinEventsOut:
    events = await services.audit.account_events(user.account_id, limit)
    return PinEventsOut(
        events=[
            PinEventOut(type=e.type, at=e.at, agent=e.agent, case_ref=e.case_ref) for e in events
        ]
    )
