"""SQL of support agents and their API keys."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from service.errors import AgentExists
from service.persistence.db import Connection

_COLUMNS = "id, name, created_at, expires_at, last_used_at, revoked_at"


async def create_agent(
    conn: Connection, name: str, key_hash: bytes, expires_at: datetime | None = None
) -> asyncpg.Record:
    """A new key; `AgentExists` while a key of that name is not revoked."""
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO agents (name, key_hash, expires_at) VALUES ($1, $2, $3)
                RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
            name,
            key_hash,
            expires_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AgentExists() from exc
    if row is None:  # INSERT ... RETURNING yields the row
        raise RuntimeError("INSERT returned no row")
    return row


async def list_agents(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_COLUMNS} FROM agents ORDER BY name, created_at")  # noqa: S608 (constant)


async def revoke_agent(conn: Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """UPDATE agents SET revoked_at = now()
           WHERE name = $1 AND revoked_at IS NULL
           RETURNING id, name, key_hash""",
        name,
    )


async def revoke_agent_by_id(conn: Connection, agent_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """UPDATE agents SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL RETURNING id, name""",
        agent_id,
    )


async def use_active_key(conn: Connection, key_hash: bytes) -> asyncpg.Record | None:
    """The key's agent if it is neither revoked nor expired, noting that it was used (one
    statement; a process asks at most once a second per key)."""
    return await conn.fetchrow(
        """UPDATE agents SET last_used_at = now()
           WHERE key_hash = $1 AND revoked_at IS NULL
             AND (expires_at IS NULL OR expires_at > now())
           RETURNING id, name""",
        key_hash,
    )
