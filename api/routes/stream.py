"""The signed-in customer's live events (Server-Sent Events, sse-starlette)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import CurrentUser, ServicesDep, UserSession
from api.problems import problem_responses
from service.container import Services
from service.errors import ServiceError, Unavailable
from service.events import END

router = APIRouter(prefix="/v1/me", tags=["me"])

# A comment line this often keeps proxies from closing an idle stream; the session is
# checked again as often, so a stream ends within this time of its session's end.
KEEPALIVE_SECONDS = 15

EVENT_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "`text/event-stream`. Events (`event:` name, JSON `data:`, `id:` for "
            "Last-Event-ID): `pin_issued`, `pin_verified` {agent, case_ref, at}, "
            "`verify_failed` {at}, `locked`, `confirmation_requested` {id, agent, choices, "
            "expires_at}, `confirmation_resolved` {id, status}, `contact` {in_contact, agent, "
            "case_ref, since}, `reported`."
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/stream",
    summary="Live events of the signed-in account (Server-Sent Events)",
    description=(
        "The bearer token goes in the `Authorization` header (read the stream with `fetch`), "
        "never in the URL. A reconnect with `Last-Event-ID` first gets the events it missed "
        "in the last 10 minutes. A comment line comes at least every 15 seconds. The stream "
        "ends when its session ends."
    ),
    response_class=EventSourceResponse,
    responses={**EVENT_STREAM, **problem_responses(401, 422, 503)},
)
async def stream_events(
    user: CurrentUser,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    return EventSourceResponse(
        _events(services, user, last_event_id),
        ping=KEEPALIVE_SECONDS,
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _events(
    services: Services, user: UserSession, last_event_id: str | None
) -> AsyncIterator[ServerSentEvent]:
    bus = services.events
    # Listening before the replay is read: nothing falls between the two (duplicates are
    # dropped by id).
    async with bus.listen_account(user.account_id) as queue:
        seen = ""
        if last_event_id:
            for event in await bus.replay(user.account_id, last_event_id):
                seen = event.id
                yield ServerSentEvent(event.data, event=event.name, id=event.id)
        while True:
            try:
                # Spread: streams opened together must not all ask Redis at the same moment.
                event = await asyncio.wait_for(
                    queue.get(),
                    KEEPALIVE_SECONDS * random.uniform(0.8, 1.0),  # noqa: S311
                )
            except TimeoutError:
                if not await _still_signed_in(services, user):
                    return
                continue
            if event is END:
                return  # a session ended, or this page fell behind: it reconnects, or not
            if seen and _not_after(event.id, seen):
                continue
            yield ServerSentEvent(event.data, event=event.name, id=event.id)


async def _still_signed_in(services: Services, user: UserSession) -> bool:
    """False only when the session has ended: a store that does not answer now is asked
    again at the next keep-alive (closing every page at once would bring them all back)."""
    try:
        if user.from_provider:
            if services.oidc is None:
                return False
            await services.oidc.tokens.verify(user.token)
            return True
        return await services.sessions.account_for(user.token) == user.account_id
    except Unavailable:
        return True
    except ServiceError:
        return False


def _not_after(event_id: str, seen: str) -> bool:
    def key(value: str) -> tuple[int, int]:
        first, _, second = value.partition("-")
        return int(first), int(second or 0)

    return key(event_id) <= key(seen)
