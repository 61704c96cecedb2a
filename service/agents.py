"""Support agents: created and revoked by ops, authenticated by API key.

Authentication reads, in order: a small cache in the process (entries live
`LOCAL_CACHE_SECONDS`), a cache in Redis (shared by every instance), then Postgres. Revoking
first writes a revocation mark over the Redis entry, and that entry is only ever filled with
SET NX, so a lookup racing with the revocation cannot put the agent back; `revoke` then waits
out the process caches (an entry is dated from before the read that filled it, so none that
was read before the mark outlives the wait): once `revoke` returns, no instance accepts the
key. The process cache saves a Redis round trip per verification when a key is used more
than once a second (tooling that verifies many callers with one key; the benchmark's agent),
and nothing for a person's key used once per call (README, Performance)."""

from __future__ import annotations

import asyncio
import time
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
# How long a process trusts what it read; `revoke` waits this long (and a margin) before it
# returns. Short, so revoking stays quick; a key in steady use is still a hit nearly always.
LOCAL_CACHE_SECONDS = 1.0
LOCAL_CACHE_MAX_ENTRIES = 10_000  # keys of active agents only; cleared when full
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
        # key hash -> (agent, monotonic time after which the entry is not used)
        self._local: dict[bytes, tuple[Agent, float]] = {}
        self._lookups: dict[bytes, asyncio.Future[Agent | None]] = {}

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
        self._local.pop(key_hash, None)
        async with self._db.connection() as conn:
            row = await sql.revoke_agent(conn, name)
        if row is None:
            raise NotFound(f"No active agent named {name!r}.")
        await self._audit.record(AuditEvent(EventType.AGENT_REVOKED, agent=Agent(row["id"], name)))
        # Every process's cache entry for the key dates from before the mark: let them lapse.
        await asyncio.sleep(LOCAL_CACHE_SECONDS + 0.1)

    async def authenticate(self, key: str) -> Agent | None:
        if not key.startswith(AGENT_KEY_PREFIX):
            return None
        key_hash = agent_key_hash(key)
        local = self._local.get(key_hash)
        if local is not None and time.monotonic() < local[1]:
            return local[0]
        # One lookup per key at a time: the requests that miss together (the first ones on a
        # key, and every LOCAL_CACHE_SECONDS those of a key in steady use) share it instead
        # of each asking Redis, or Postgres, at once.
        lookup = self._lookups.get(key_hash)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(key_hash))
            self._lookups[key_hash] = lookup
            lookup.add_done_callback(lambda done: self._forget(key_hash, done))
        # Shielded: a request that goes away does not cancel the lookup the others wait for.
        return await asyncio.shield(lookup)

    def _forget(self, key_hash: bytes, lookup: asyncio.Future[Agent | None]) -> None:
        self._lookups.pop(key_hash, None)
        if not lookup.cancelled():
            lookup.exception()  # retrieved, even if every request that waited went away

    async def _look_up(self, key_hash: bytes) -> Agent | None:
        now = time.monotonic()
        agent = await self._authenticate_shared(key_hash)
        if agent is not None:
            if len(self._local) >= LOCAL_CACHE_MAX_ENTRIES:
                self._local.clear()
            # Dated from before the reads above, so `revoke`'s wait covers it.
            self._local[key_hash] = (agent, now + LOCAL_CACHE_SECONDS)
        return agent

    async def _authenticate_shared(self, key_hash: bytes) -> Agent | None:
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
