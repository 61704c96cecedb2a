"""SQL of the append-only audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from service.persistence.db import Connection

# One statement for a whole batch: the rows travel as one JSON array (cheaper to encode than
# six arrays), one row per element, ids drawn in input order (the ORDER BY of the SELECT), and
# the timestamps come back as one array in that order.
_INSERT_MANY = """
WITH inserted AS (
    INSERT INTO audit_events
        (event_id, type, account_id, agent_id, agent_name, reason, request_id, actor,
         case_ref, target)
    SELECT e.event_id, e.type, e.account_id, e.agent_id, e.agent_name, e.reason, e.request_id,
           e.actor, e.case_ref, e.target
    FROM ROWS FROM (
            jsonb_to_recordset($1::jsonb) AS (
                event_id uuid, type text, account_id uuid, agent_id uuid,
                agent_name text, reason text, request_id text, actor text, case_ref text,
                target text
            )
        ) WITH ORDINALITY
        AS e(event_id, type, account_id, agent_id, agent_name, reason, request_id, actor,
             case_ref, target, n)
    ORDER BY e.n
    RETURNING id, occurred_at, event_id, type, account_id
), noticed AS (
    -- The outbox: a notice per channel for each event of an account that calls for one. The
    -- notice of a deletion keeps the address, which the account is about to lose.
    INSERT INTO notices (event_id, channel, to_address)
    SELECT i.event_id, r.channel,
           CASE WHEN i.type = 'account_deleted'
                THEN (SELECT a.email FROM accounts a WHERE a.id = i.account_id) END
    FROM inserted i JOIN unnest($2::text[], $3::text[]) AS r(channel, type) ON r.type = i.type
    WHERE i.account_id IS NOT NULL
)
SELECT array_agg(occurred_at ORDER BY id) FROM inserted
"""


@dataclass(frozen=True)
class EventRow:
    event_id: UUID
    type: str
    account_id: UUID | None
    agent_id: UUID | None
    agent_name: str | None
    reason: str | None
    request_id: str | None
    actor: str | None
    case_ref: str | None
    target: str | None


@dataclass(frozen=True)
class NoticeRule:
    """Which events an account holder is told of outside the page: (channel, type) pairs."""

    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def types(self) -> frozenset[str]:
        return frozenset(event_type for _, event_type in self.pairs)


NO_NOTICES = NoticeRule()


async def insert_events(
    conn: Connection, rows: Sequence[EventRow], notices: NoticeRule = NO_NOTICES
) -> list[datetime]:
    """Insert `rows` with one statement, and in it their notices (the outbox); their
    `occurred_at`, in the order given."""
    # orjson writes a dataclass as an object of its fields and a UUID as its canonical text;
    # `str` does the same for asyncpg's own UUID type (ids read from Postgres).
    payload = orjson.dumps(list(rows), default=str).decode()
    stamps: list[datetime] = await conn.fetchval(
        _INSERT_MANY,
        payload,
        [channel for channel, _ in notices.pairs],
        [event_type for _, event_type in notices.pairs],
    )
    return stamps


async def account_events(
    conn: Connection, account_id: UUID, types: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT type, occurred_at, agent_name, case_ref FROM audit_events e
           WHERE account_id = $1 AND type = ANY($2::text[])
             AND NOT EXISTS (SELECT 1 FROM audit_voids v WHERE v.event_id = e.event_id)
           ORDER BY id DESC LIMIT $3""",
        account_id,
        list(types),
        limit,
    )


async def void_events(conn: Connection, event_ids: Sequence[UUID]) -> None:
    """Mark events as answered with an error, whether or not their rows committed."""
    await conn.execute(
        """INSERT INTO audit_voids (event_id) SELECT unnest($1::uuid[])
           ON CONFLICT (event_id) DO NOTHING""",
        list(event_ids),
    )


@dataclass(frozen=True)
class AuditQuery:
    email: str | None = None
    actor: str | None = None
    type: str | None = None
    case_ref: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None  # the cursor: rows older than this one


async def search(conn: Connection, query: AuditQuery, limit: int) -> list[asyncpg.Record]:
    """Audit rows matching every filter given, newest first, voided rows left out. `email`
    finds the account's rows and administrative actions done to that address."""
    return await conn.fetch(
        """SELECT e.id, e.occurred_at, e.type, coalesce(a.email, a.pseudonym) AS account_email,
                  coalesce(e.actor, CASE WHEN e.agent_name IS NOT NULL
                                         THEN 'key:' || e.agent_name END) AS actor,
                  e.case_ref, e.reason, e.request_id, e.target
           FROM audit_events e LEFT JOIN accounts a ON a.id = e.account_id
           WHERE ($1::text IS NULL
                  OR e.account_id = (SELECT id FROM accounts WHERE email = $1)
                  OR e.target = $1)
             AND ($2::text IS NULL OR e.actor = $2
                  OR (e.actor IS NULL AND 'key:' || e.agent_name = $2))
             AND ($3::text IS NULL OR e.type = $3)
             AND ($4::text IS NULL OR e.case_ref = $4)
             AND ($5::timestamptz IS NULL OR e.occurred_at >= $5)
             AND ($6::timestamptz IS NULL OR e.occurred_at < $6)
             AND ($7::bigint IS NULL OR e.id < $7)
             AND NOT EXISTS (SELECT 1 FROM audit_voids v WHERE v.event_id = e.event_id)
           ORDER BY e.id DESC LIMIT $8""",
        query.email,
        query.actor,
        query.type,
        query.case_ref,
        query.since,
        query.until,
        query.before_id,
        limit,
    )
