"""SQL of the append-only audit log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from service.persistence.db import Connection

_INSERT = """
INSERT INTO audit_events (type, account_id, agent_id, agent_name, reason, request_id)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING occurred_at
"""


async def insert_event(
    conn: Connection,
    *,
    type: str,
    account_id: UUID | None,
    agent_id: UUID | None,
    agent_name: str | None,
    reason: str | None,
    request_id: str | None,
) -> datetime:
    occurred_at: datetime = await conn.fetchval(
        _INSERT, type, account_id, agent_id, agent_name, reason, request_id
    )
    return occurred_at


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
