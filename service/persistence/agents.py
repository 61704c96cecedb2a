"""SQL of support agents and their API keys."""

from __future__ import annotations

import asyncpg

from service.errors import AgentExists
from service.persistence.db import Connection


async def create_agent(conn: Connection, name: str, key_hash: bytes) -> asyncpg.Record:
    try:
        row = await conn.fetchrow(
            "INSERT INTO agents (name, key_hash) VALUES ($1, $2) RETURNING id, name, created_at",
            name,
            key_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        raise AgentExists() from exc
    if row is None:  # INSERT ... RETURNING yields the row
        raise RuntimeError("INSERT returned no row")
    return row


async def list_agents(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, name, created_at, revoked_at FROM agents ORDER BY name")


async def revoke_agent(conn: Connection, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """UPDATE agents SET revoked_at = now()
           WHERE name = $1 AND revoked_at IS NULL
           RETURNING id, name, key_hash""",
        name,
    )


async def active_agent_by_key_hash(conn: Connection, key_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name FROM agents WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
