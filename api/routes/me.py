from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from api.deps import CurrentUser, ServicesDep
from api.problems import problem_responses
from api.responses import json_response, utc
from schemas.accounts import AccountOut
from schemas.pins import PinEventOut, PinEventsOut, PinOut, PinStatusOut
from service.container import Services

router = APIRouter(prefix="/v1/me", tags=["me"])


@router.get(
    "",
    summary="The signed-in account",
    response_model=AccountOut,
    responses=problem_responses(401, 503),
)
async def get_me(user: CurrentUser, services: ServicesDep) -> AccountOut:
    account = await services.accounts.get(user.account_id)
    return AccountOut(
        id=account.id,
        email=account.email,
        mfa_enabled=account.mfa_enabled,
        created_at=account.created_at,
    )


@router.post(
    "/support-pin",
    summary="Generate a support PIN; the previous one stops working",
    status_code=status.HTTP_201_CREATED,
    response_model=PinOut,
    responses=problem_responses(401, 429, 503),
)
async def create_support_pin(user: CurrentUser, request: Request) -> Response:
    # A hot route: requests of the ordinary shape are answered by `api.hot` with the same
    # `issue_pin`; this is the route of the OpenAPI document and of every other request.
    services: Services = request.app.state.services
    return json_response(await issue_pin(services, user.account_id), status.HTTP_201_CREATED)


async def issue_pin(
    services: Services, account_id: UUID, *, session_key: str | None = None
) -> dict[str, Any]:
    """The work and the answer (a `PinOut`, serialised by the caller with orjson: see
    api/responses.py) of PIN issuance. With `session_key` (the caller's session, not yet
    checked), the issue script checks it first."""
    # The account's issuance limit is counted inside the issue script, before the PIN.
    limit = services.limits.pin_issue_hit(account_id)
    issued = await services.pins.issue(account_id, limit, session_key=session_key)
    return {
        "pin": issued.pin,
        "expires_at": utc(issued.expires_at),
        "ttl_seconds": issued.ttl_seconds,
    }


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
    return PinEventsOut(events=[PinEventOut(type=e.type, at=e.at, agent=e.agent) for e in events])
