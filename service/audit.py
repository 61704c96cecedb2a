"""The audit log: an event is only 'recorded' once its row is committed in Postgres."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from uuid import UUID

from service.models import ACCOUNT_VISIBLE_EVENTS, AccountEvent, AuditEvent
from service.persistence import audit as sql
from service.persistence.db import Connection, Database

# Set by the HTTP layer for each request so audit rows can be joined with log lines.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, *events: AuditEvent) -> datetime:
        """Commit the events in one transaction and return the first one's timestamp.

        Raises `Unavailable` if Postgres does not take the rows: the caller must then not
        answer with success."""
        return await self._db.must_write(lambda conn: self.insert(conn, *events))

    async def insert(self, conn: Connection, *events: AuditEvent) -> datetime:
        """Write the events inside the caller's transaction (they commit, or roll back, with
        the change they describe); returns the first one's timestamp."""
        request_id = request_id_var.get()
        stamps = [
            await sql.insert_event(
                conn,
                type=event.type.value,
                account_id=event.account_id,
                agent_id=event.agent.id if event.agent else None,
                agent_name=event.agent.name if event.agent else None,
                reason=event.reason,
                request_id=request_id,
            )
            for event in events
        ]
        return stamps[0]

    async def account_events(self, account_id: UUID, limit: int) -> list[AccountEvent]:
        async with self._db.connection() as conn:
            rows = await sql.account_events(
                conn, account_id, [t.value for t in ACCOUNT_VISIBLE_EVENTS], limit
            )
        return [AccountEvent(row["type"], row["occurred_at"], row["agent_name"]) for row in rows]
