"""SQL of the append-only audit log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service.persistence.db import Connection

# One statement for a whole batch: arrays in, one row per element, ids in input order (the
# identity is drawn row by row in the order of the SELECT).
_INSERT_MANY = """
INSERT INTO audit_events (type, account_id, agent_id, agent_name, reason, request_id)
SELECT type, account_id, agent_id, agent_name, reason, request_id
FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[])
     WITH ORDINALITY AS e(type, account_id, agent_id, agent_name, reason, request_id, n)
ORDER BY n
RETURNING id, occurred_at
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
    records = await conn.fetch(
        _INSERT_MANY,
        [r.type for r in rows],
        [r.account_id for r in rows],
        [r.agent_id for r in rows],
        [r.agent_name for r in rows],
        [r.reason for r in rows],
        [r.request_id for r in rows],
    )
    return [record["occurred_at"] for record in sorted(records, key=lambda r: r["id"])]


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
