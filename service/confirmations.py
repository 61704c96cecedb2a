"""Agent-started confirmation with number matching, and "who is on the line".

An agent on a call asks the service to confirm the caller: the customer's page shows the
agent's name and three two-digit numbers, and the customer presses the one the agent reads
out. A secret is transferred (NIST SP 800-63B-4 §3.1.3), which a bare "approve?" push lacks,
and "I am not on a call with Support" reports a fake support call.

A request lives 120 s; a new one for the same account replaces it. A request for an address
with no account (or a locked one) is stored under the address's digest like any other, so
the agent's answers (201, then pending, then expired) are the same and tell nothing.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

import orjson
from redis.typing import EncodableT, FieldT

from service.audit import AuditLog
from service.errors import NotFound, Unavailable
from service.events import Contact, EventBus, rfc3339
from service.keys import keyed_digest
from service.limits import FAILURE_COUNTER_TTL_MS, RateLimiter
from service.models import Agent, AuditEvent, EventType
from service.pins import PinService
from service.redis_store import RedisStore, account_tag

REQUEST_SECONDS = 120
DECISION_KEPT_SECONDS = 3600
Status = Literal["pending", "approved", "denied", "expired"]


@dataclass(frozen=True)
class Requested:
    id: str
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class PendingConfirmation:
    id: str
    agent: str
    case_ref: str | None
    choices: list[str]
    expires_at: datetime
    since: datetime


@dataclass(frozen=True)
class ConfirmationState:
    status: Status
    decided_at: datetime | None


@dataclass(frozen=True)
class SupportContact:
    in_contact: bool
    agent: str | None = None
    case_ref: str | None = None
    since: datetime | None = None


def _text(value: bytes | str) -> str:
    """A value Redis returned (bytes: the client does not decode)."""
    return value.decode() if isinstance(value, bytes) else value


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(ms: int | bytes | str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


class ConfirmationService:
    def __init__(
        self,
        redis: RedisStore,
        audit: AuditLog,
        limits: RateLimiter,
        pins: PinService,
        events: EventBus,
        *,
        code_key: bytes,
        contact_window_seconds: int,
        request_seconds: int = REQUEST_SECONDS,
    ) -> None:
        self._redis = redis
        self._keys = redis.keys
        self._audit = audit
        self._limits = limits
        self._pins = pins
        self._events = events
        self._code_key = code_key
        self.contact_window_seconds = contact_window_seconds
        self.request_seconds = request_seconds
        self._decide = redis.script("confirmation_decide")

    def _digest(self, confirmation_id: str, code: str) -> str:
        return keyed_digest(self._code_key, confirmation_id, code).hex()

    async def request(
        self,
        agent: Agent,
        account_id: UUID | None,
        subject: str,
        case_ref: str | None,
        *,
        target: str,
    ) -> Requested:
        """A new request for the account (replacing a pending one), under the agent's and
        the account's limits. `subject` is the account's verification subject (its tag, or
        the digest of an address with none)."""
        await self._limits.confirmation_by_agent(agent.id)
        await self._limits.confirmation_for(subject)
        _, _, lock_key = self._keys.pin_state_of(subject)
        async with self._redis.guard():  # asked for an address with no account too: same time
            lock_found = bool(await self._redis.client.exists(lock_key))
        locked = account_id is not None and lock_found
        # A locked account's request is kept where nobody can answer it: like no account.
        stored_under = subject if not locked else f"x{subject}"
        confirmation_id = secrets.token_urlsafe(16)
        code = f"{secrets.randbelow(100):02d}"
        others = [f"{n:02d}" for n in range(100) if f"{n:02d}" != code]
        choices = [code, *secrets.SystemRandom().sample(others, 2)]
        secrets.SystemRandom().shuffle(choices)
        now = datetime.now(UTC)
        expires_at = now + timedelta(seconds=self.request_seconds)
        fields: dict[FieldT, EncodableT] = {
            "id": confirmation_id,
            "code": self._digest(confirmation_id, code),
            "agent": agent.name,
            "agent_id": str(agent.id),
            "case_ref": case_ref or "",
            "choices": orjson.dumps(choices),
            "exp": _ms(expires_at),
            "since": _ms(now),
        }
        index = orjson.dumps(
            {"subject": stored_under, "agent_id": str(agent.id), "exp": _ms(expires_at)}
        )
        async with self._redis.guard():
            async with self._redis.client.pipeline(transaction=False) as pipe:
                pipe.delete(self._keys.confirmation(stored_under))
                pipe.hset(self._keys.confirmation(stored_under), mapping=fields)
                pipe.pexpire(self._keys.confirmation(stored_under), self.request_seconds * 1000)
                await pipe.execute()
            await self._redis.client.set(
                self._keys.confirmation_index(confirmation_id), index, ex=DECISION_KEPT_SECONDS
            )
        await self._audit.record(
            AuditEvent(
                EventType.CONFIRMATION_REQUESTED,
                account_id,
                agent,
                case_ref=case_ref,
                target=None if account_id else target,
            )
        )
        if account_id is not None and not locked:
            since = rfc3339(now)
            # After the answer: the 201 takes as long for an address with no account.
            self._events.publish_soon(
                account_id,
                (
                    "confirmation_requested",
                    {
                        "id": confirmation_id,
                        "agent": agent.name,
                        "case_ref": case_ref,
                        "choices": choices,
                        "expires_at": rfc3339(expires_at),
                    },
                ),
                (
                    "contact",
                    {"in_contact": True, "agent": agent.name, "case_ref": case_ref, "since": since},
                ),
            )
        return Requested(confirmation_id, code, expires_at)

    async def pending(self, account_id: UUID) -> list[PendingConfirmation]:
        async with self._redis.guard():
            found = await self._redis.client.hgetall(
                self._keys.confirmation(account_tag(account_id))
            )
        if not found or int(found[b"exp"]) <= time.time() * 1000:
            return []
        return [
            PendingConfirmation(
                id=_text(found[b"id"]),
                agent=_text(found[b"agent"]),
                case_ref=_text(found[b"case_ref"]) or None,
                choices=orjson.loads(found[b"choices"]),
                expires_at=_from_ms(found[b"exp"]),
                since=_from_ms(found[b"since"]),
            )
        ]

    async def answer(self, account_id: UUID, confirmation_id: str, choice: str | None) -> Status:
        """The customer's answer: a number (`choice`), or None for "I am not on a call with
        Support". `NotFound` when no such request is pending."""
        subject = account_tag(account_id)
        _, failures, lock = self._keys.pin_state_of(subject)
        answer = "deny" if choice is None else self._digest(confirmation_id, choice)
        async with self._redis.guard():
            reply = await self._decide(
                keys=[
                    self._keys.confirmation(subject),
                    self._keys.confirmation_decision(subject, confirmation_id),
                    failures,
                    lock,
                ],
                args=[
                    confirmation_id,
                    answer,
                    self._pins.account_max_failures,
                    self._pins.account_lock_seconds * 1000,
                    FAILURE_COUNTER_TTL_MS,
                    DECISION_KEPT_SECONDS * 1000,
                ],
            )
        outcome = reply[0].decode()
        if outcome == "gone":
            raise NotFound("No such confirmation is waiting for an answer.")
        agent = Agent(UUID(reply[2].decode()), reply[1].decode())
        case_ref = reply[3].decode() or None
        events = []
        if outcome == "approved":
            events.append(
                AuditEvent(EventType.CONFIRMATION_APPROVED, account_id, agent, case_ref=case_ref)
            )
        else:
            events.append(
                AuditEvent(
                    EventType.CONFIRMATION_DENIED,
                    account_id,
                    agent,
                    reason=outcome if outcome != "denied" else "wrong_number",
                    case_ref=case_ref,
                )
            )
            if outcome == "reported":
                events.append(
                    AuditEvent(
                        EventType.REPORTED, account_id, agent, reason="call", case_ref=case_ref
                    )
                )
            if int(reply[4]):
                events.append(AuditEvent(EventType.LOCKED, account_id, agent, case_ref=case_ref))
        at = await self._audit.record(*events)
        status: Status = "approved" if outcome == "approved" else "denied"
        await self._announce(account_id, confirmation_id, status, agent, case_ref, at)
        return status

    async def _announce(
        self,
        account_id: UUID,
        confirmation_id: str,
        status: Status,
        agent: Agent,
        case_ref: str | None,
        at: datetime,
    ) -> None:
        resolved = ("confirmation_resolved", {"id": confirmation_id, "status": status})
        if status == "approved":
            since = rfc3339(at)
            contact = (
                "contact",
                {"in_contact": True, "agent": agent.name, "case_ref": case_ref, "since": since},
            )
            await self._events.publish_quietly(
                account_id,
                resolved,
                contact,
                contact=Contact(agent.name, case_ref, at, self.contact_window_seconds),
            )
        else:
            # A refused request ends the contact a check may have opened.
            with contextlib.suppress(Unavailable):
                async with self._redis.guard():
                    await self._redis.client.delete(self._keys.contact(account_id))
            await self._events.publish_quietly(
                account_id,
                resolved,
                ("contact", {"in_contact": False, "agent": None, "case_ref": None, "since": None}),
            )
        with contextlib.suppress(Unavailable):  # the agent's page reads the state again too
            await self._events.send(
                self._keys.confirmation_channel(confirmation_id),
                "status",
                {"status": status, "decided_at": rfc3339(at)},
            )

    async def state(self, agent: Agent, confirmation_id: str) -> ConfirmationState:
        """The request's state for the agent who made it (`NotFound` for anyone else)."""
        async with self._redis.guard():
            raw = await self._redis.client.get(self._keys.confirmation_index(confirmation_id))
        if not isinstance(raw, bytes):
            raise NotFound("No such confirmation.")
        index = orjson.loads(raw)
        if index["agent_id"] != str(agent.id):
            raise NotFound("No such confirmation.")
        subject = index["subject"]
        async with self._redis.guard():
            decided = await self._redis.client.hgetall(
                self._keys.confirmation_decision(subject, confirmation_id)
            )
            current = await self._redis.client.hget(self._keys.confirmation(subject), "id")
        if decided:
            status: Status = "approved" if _text(decided[b"status"]) == "approved" else "denied"
            return ConfirmationState(status, _from_ms(decided[b"decided"]))
        still_pending = current == confirmation_id.encode() and index["exp"] > time.time() * 1000
        return ConfirmationState("pending" if still_pending else "expired", None)

    async def contact(self, account_id: UUID) -> SupportContact:
        """Whether Support is in contact with the customer now: while a confirmation is
        pending, and for the contact window after a successful check."""
        for pending in await self.pending(account_id):
            return SupportContact(True, pending.agent, pending.case_ref, pending.since)
        async with self._redis.guard():
            found = await self._redis.client.hgetall(self._keys.contact(account_id))
        if not found:
            return SupportContact(False)
        return SupportContact(
            True,
            _text(found[b"agent"]),
            _text(found[b"case_ref"]) or None,
            datetime.fromisoformat(_text(found[b"since"])),
        )
