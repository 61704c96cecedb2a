"""Support agents: created and revoked by ops, authenticated by API key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.audit import AuditLog
from service.errors import NotFound
from service.models import Agent, AuditEvent, EventType
from service.persistence import agents as sql
from service.persistence.db import Database
from service.tokens import AGENT_KEY_PREFIX, agent_key_hash, new_token


@dataclass(frozen=True)
class AgentRecord:
    name: str
    created_at: datetime
    revoked_at: datetime | None


class AgentService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit

    async def create(self, name: str) -> tuple[Agent, str]:
        """A new agent and its API key; the key is not stored and cannot be shown again."""
        key = new_token(AGENT_KEY_PREFIX)
        async with self._db.connection() as conn:
            row = await sql.create_agent(conn, name, agent_key_hash(key))
        agent = Agent(row["id"], row["name"])
        await self._audit.record(AuditEvent(EventType.AGENT_CREATED, agent=agent))
        return agent, key

    async def list(self) -> list[AgentRecord]:
        async with self._db.connection() as conn:
            rows = await sql.list_agents(conn)
        return [AgentRecord(r["name"], r["created_at"], r["revoked_at"]) for r in rows]

    async def revoke(self, name: str) -> None:
        async with self._db.connection() as conn:
            row = await sql.revoke_agent(conn, name)
        if row is None:
            raise NotFound(f"No active agent named {name!r}.")
        await self._audit.record(AuditEvent(EventType.AGENT_REVOKED, agent=Agent(row["id"], name)))

    async def authenticate(self, key: str) -> Agent | None:
        if not key.startswith(AGENT_KEY_PREFIX):
            return None
        async with self._db.connection() as conn:
            row = await sql.active_agent_by_key_hash(conn, agent_key_hash(key))
        return Agent(row["id"], row["name"]) if row is not None else None
