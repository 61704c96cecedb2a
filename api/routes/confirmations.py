"""Agent-started confirmation with number matching, and the customer's call status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, status
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import CurrentAgent, CurrentUser, ServicesDep
from api.problems import problem_responses
from api.routes.stream import KEEPALIVE_SECONDS
from schemas.confirmations import (
    AnswerOut,
    ChoiceIn,
    ConfirmationByEmail,
    ConfirmationBySubject,
    ConfirmationCreated,
    ConfirmationStateOut,
    PendingConfirmationOut,
    PendingConfirmationsOut,
    SupportContactOut,
)
from service.confirmations import ConfirmationState
from service.container import Services
from service.events import END
from service.models import Agent

agent_router = APIRouter(prefix="/v1/agent", tags=["agent"])
me_router = APIRouter(prefix="/v1/me", tags=["me"])

ConfirmationId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@agent_router.post(
    "/confirmations",
    summary="Ask the customer on the line to confirm it is them (number matching)",
    description=(
        "For an API key or staff with the `agent` role. The answer's two-digit `code` is read "
        "to the caller, whose account page asks which of three numbers the agent is reading. "
        "The request lives 120 s; a new one for the same account replaces it. An address "
        "with no account gets the same 201 (a request that can only expire)."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=ConfirmationCreated,
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
)
async def request_confirmation(
    body: ConfirmationByEmail | ConfirmationBySubject, agent: CurrentAgent, services: ServicesDep
) -> ConfirmationCreated:
    if isinstance(body, ConfirmationBySubject):
        account_id, subject, name = await services.verifications.account_of(subject=body.subject)
    else:
        account_id, subject, name = await services.verifications.account_of(email=body.email)
    requested = await services.confirmations.request(
        agent, account_id, subject, body.case_ref, target=name
    )
    return ConfirmationCreated(
        id=requested.id, code=requested.code, expires_at=requested.expires_at
    )


def _state_out(state: ConfirmationState) -> ConfirmationStateOut:
    return ConfirmationStateOut(status=state.status, decided_at=state.decided_at)


@agent_router.get(
    "/confirmations/{confirmation_id}",
    summary="The state of a confirmation this agent asked for",
    response_model=ConfirmationStateOut,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_confirmation(
    confirmation_id: ConfirmationId, agent: CurrentAgent, services: ServicesDep
) -> ConfirmationStateOut:
    return _state_out(await services.confirmations.state(agent, confirmation_id))


@agent_router.get(
    "/confirmations/{confirmation_id}/stream",
    summary="The state of a confirmation, live (Server-Sent Events)",
    description=(
        "`status` events ({status, decided_at}): the current state at once, then each change; "
        "the stream ends once the request is approved, denied or expired."
    ),
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 404, 422, 503),
    },
)
async def stream_confirmation(
    confirmation_id: ConfirmationId, agent: CurrentAgent, services: ServicesDep
) -> EventSourceResponse:
    await services.confirmations.state(agent, confirmation_id)  # 404 before streaming
    return EventSourceResponse(
        _confirmation_events(services, agent, confirmation_id),
        ping=KEEPALIVE_SECONDS,
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _confirmation_events(
    services: Services, agent: Agent, confirmation_id: str
) -> AsyncIterator[ServerSentEvent]:
    channel = services.redis.keys.confirmation_channel(confirmation_id)
    async with services.events.listen(channel) as queue:
        while True:
            state = await services.confirmations.state(agent, confirmation_id)
            yield ServerSentEvent(
                _state_out(state).model_dump_json(), event="status", id=str(time.time_ns())
            )
            if state.status != "pending":
                return
            # Woken by the decision, or after a second to notice expiry.
            try:
                event = await asyncio.wait_for(queue.get(), 1.0)
            except TimeoutError:
                continue
            if event is END:
                return


@me_router.get(
    "/confirmations",
    summary="Confirmations Support is asking of this customer now",
    response_model=PendingConfirmationsOut,
    responses=problem_responses(401, 503),
)
async def list_confirmations(user: CurrentUser, services: ServicesDep) -> PendingConfirmationsOut:
    pending = await services.confirmations.pending(user.account_id)
    return PendingConfirmationsOut(
        confirmations=[
            PendingConfirmationOut(
                id=item.id,
                agent=item.agent,
                case_ref=item.case_ref,
                choices=item.choices,
                expires_at=item.expires_at,
            )
            for item in pending
        ]
    )


@me_router.post(
    "/confirmations/{confirmation_id}",
    summary="Answer a confirmation with the number the agent is reading",
    description=(
        "`approved` for the agent's number; `denied` for another (counted as a failed "
        "verification toward the account's lock). 404 when no such request is waiting."
    ),
    response_model=AnswerOut,
    responses=problem_responses(400, 401, 404, 413, 422, 503),
)
async def answer_confirmation(
    confirmation_id: ConfirmationId, body: ChoiceIn, user: CurrentUser, services: ServicesDep
) -> AnswerOut:
    answered = await services.confirmations.answer(user.account_id, confirmation_id, body.choice)
    return AnswerOut(status="approved" if answered == "approved" else "denied")


@me_router.post(
    "/confirmations/{confirmation_id}/deny",
    summary="I am not on a call with Support: deny, and report the call",
    response_model=AnswerOut,
    responses=problem_responses(401, 404, 422, 503),
)
async def deny_confirmation(
    confirmation_id: ConfirmationId, user: CurrentUser, services: ServicesDep
) -> AnswerOut:
    await services.confirmations.answer(user.account_id, confirmation_id, None)
    return AnswerOut(status="denied")


@me_router.get(
    "/support-contact",
    summary="Whether someone from Support is in contact with this customer right now",
    description=(
        "True while a confirmation is pending, and for CONTACT_WINDOW_SECONDS after a "
        "successful verification or confirmation."
    ),
    response_model=SupportContactOut,
    responses=problem_responses(401, 503),
)
async def get_support_contact(user: CurrentUser, services: ServicesDep) -> SupportContactOut:
    contact = await services.confirmations.contact(user.account_id)
    return SupportContactOut(
        in_contact=contact.in_contact,
        agent=contact.agent,
        case_ref=contact.case_ref,
        since=contact.since,
    )
