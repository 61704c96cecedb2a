"""Support agents: created and revoked by ops, authenticated by API key.

Authentication reads a cache in Redis (shared by every instance) before Postgres. Revoking
first writes a revocation mark over the cache entry, and the cache is only ever filled with
SET NX, so a lookup racing with the revocation cannot put the agent back: once `revoke`
returns, no instance accepts the key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from service.audit import AuditLog
from service.errors import NotFound
from service.models import Agent, AuditEvent, EventType
from service.persistence import agents as sql
from service.persistence.db import Database
from service.redis_store import RedisStore
from service.tokens import AGENT_KEY_PREFIX, agent_key_hash, new_token

AGENT_CACHE_SECONDS = 60
# Outlives any cache fill that read Postgres before the revocation committed.
REVOKED_MARK_SECONDS = 10 * AGENT_CACHE_SECONDS
_REVOKED = b"-"  # never a cached agent: those start with a 16-byte id


@dataclass(frozen=True)
class AgentRecord:
    name: str
    created_at: datetime
    revoked_at: datetime | None


class AgentService:
    def __init__(self, db: Database, audit: AuditLog, redis: RedisStore) -> None:
        self._db = db
        self._audit = audit
        self._redis = redis

    def _cache_key(self, key_hash: bytes) -> str:
        return self._redis.keys.agent_key(key_hash.hex())

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
            key_hash = await sql.active_key_hash_by_name(conn, name)
        if key_hash is None:
            raise NotFound(f"No active agent named {name!r}.")
        # The mark first: if Redis refuses it, nothing is revoked and the command fails.
        async with self._redis.guard():
            await self._redis.client.set(
                self._cache_key(key_hash), _REVOKED, ex=REVOKED_MARK_SECONDS
            )
        async with self._db.connection() as conn:
            row = await sql.revoke_agent(conn, name)
        if row is None:
            raise NotFound(f"No active agent named {name!r}.")
        await self._audit.record(AuditEvent(EventType.AGENT_REVOKED, agent=Agent(row["id"], name)))

    async def authenticate(self, key: str) -> Agent | None:
        if not key.startswith(AGENT_KEY_PREFIX):
            return None
        key_hash = agent_key_hash(key)
        cache_key = self._cache_key(key_hash)
        async with self._redis.guard():
            cached = await self._redis.client.get(cache_key)
        if isinstance(cached, bytes):
            if cached == _REVOKED:
                return None
            return Agent(UUID(bytes=cached[:16]), cached[16:].decode())
        async with self._db.connection() as conn:
            row = await sql.active_agent_by_key_hash(conn, key_hash)
        if row is None:
            return None
        agent = Agent(row["id"], row["name"])
        async with self._redis.guard():
            # NX: a revocation mark written meanwhile must win.
            await self._redis.client.set(
                cache_key, agent.id.bytes + agent.name.encode(), ex=AGENT_CACHE_SECONDS, nx=True
            )
        return agent
