""" "This wasn't me": the link in every notice email locks support access to the account.

One press revokes the account's PIN, ends every session (and the live pages), and refuses
verifications and confirmations for 24 hours (the account's verification lock, reason
`reported`). The link works once, for 24 hours."""

from __future__ import annotations

from uuid import UUID

from service.audit import AuditLog
from service.errors import InvalidLink
from service.events import EventBus
from service.models import AuditEvent, EventType
from service.notices import REPORT_LINK_SECONDS, ReportLinks
from service.pins import PinService
from service.redis_store import RedisStore
from service.sessions import SessionStore

REPORT_LOCK_SECONDS = 24 * 3600


class ReportService:
    def __init__(
        self,
        redis: RedisStore,
        audit: AuditLog,
        links: ReportLinks,
        pins: PinService,
        sessions: SessionStore,
        events: EventBus,
    ) -> None:
        self._redis = redis
        self._audit = audit
        self._links = links
        self._pins = pins
        self._sessions = sessions
        self._events = events

    async def report(self, token: str) -> UUID:
        """Lock support access to the link's account; `InvalidLink` otherwise."""
        checked = self._links.check(token)
        if checked is None:
            raise InvalidLink()
        account_id, digest = checked
        async with self._redis.guard():
            first_use = await self._redis.client.set(
                self._redis.keys.report_used(account_id, digest.hex()),
                b"1",
                nx=True,
                ex=REPORT_LINK_SECONDS,
            )
        if not first_use:
            raise InvalidLink()
        await self.lock_support_access(account_id, how="link")
        return account_id

    async def lock_support_access(self, account_id: UUID, *, how: str) -> None:
        """What a report does: the PIN revoked, every session and live page ended, checks and
        confirmations refused for 24 hours, and all of it audited (`how`: link, page)."""
        _, _, lock = self._redis.keys.pin_state(account_id)
        async with self._redis.guard():
            await self._redis.client.set(lock, b"reported", ex=REPORT_LOCK_SECONDS)
        await self._pins.revoke(account_id)
        await self._sessions.revoke_all(account_id)
        await self._audit.record(
            AuditEvent(EventType.REPORTED, account_id, reason=how),
            AuditEvent(EventType.LOCKED, account_id, reason="reported"),
        )
        await self._events.end_streams(account_id)
