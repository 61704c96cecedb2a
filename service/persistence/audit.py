"""SQL of the append-only audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from service.persistence.db import Connection

# One statement for a whole batch: the rows travel as one JSON array (asyncpg encodes six
# arrays of Python objects element by element, checking each one's type: about twice the CPU
# for a batch of 16), one row per element, ids drawn in input order (the ORDER BY of the
# SELECT), and the timestamps come back as one array in that order.
_INSERT_MANY = """
WITH inserted AS (
    INSERT INTO audit_events (type, account_id, agent_id, agent_name, reason, request_id)
    SELECT e.type, e.account_id, e.agent_id, e.agent_name, e.reason, e.request_id
    FROM ROWS FROM (
            jsonb_to_recordset($1::jsonb) AS (
                type text, account_id uuid, agent_id uuid,
                agent_name text, reason text, request_id text
            )
        ) WITH ORDINALITY AS e(type, account_id, agent_id, agent_name, reason, request_id, n)
    ORDER BY e.n
    RETURNING id, occurred_at
)
SELECT array_agg(occurred_at ORDER BY id) FROM inserted
"""


@dataclass(frozen=True)
class EventRow:
    type: str
    account_id: UUID | None
    agent_id: UUID | None
    agent_name: str | None
    reason: str | None
    request_id: str | None


async def insert_events(conn: Connection, rows: Sequence[EventRow]) -> list[datetime]:
    """Insert `rows` with one statement; their `occurred_at`, in the order given."""
    # orjson writes a dataclass as an object of its fields and a UUID as its canonical text;
    # `str` does the same for asyncpg's own UUID type (ids read from Postgres).
    payload = orjson.dumps(list(rows), default=str).decode()
    stamps: list[datetime] = await conn.fetchval(_INSERT_MANY, payload)
    return stamps


async def account_events(
    conn: Connection, account_id: UUID, types: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT type, occurred_at, agent_name FROM audit_events
           WHERE account_id = $1 AND type = ANY($2::text[])
           ORDER BY id DESC LIMIT $3""",
        account_id,
        list(types),
        limit,
    )
