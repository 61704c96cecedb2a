"""Support agents: created and revoked by ops, authenticated by API key.

A key is looked up in PostgreSQL, and what was read is trusted by the process for
`LOCAL_CACHE_SECONDS`: tooling that verifies many callers with one key costs one query a
second, not one a request. Nothing else caches a key, so a revocation made any way at all
(the CLI with any settings, another instance, SQL) is refused by every instance within that
time; `revoke` waits it out before it returns."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from service.audit import AuditLog
from service.errors import NotFound
from service.models import Agent, AuditEvent, EventType
from service.persistence import agents as sql
from service.persistence.db import Database
from service.tokens import AGENT_KEY_PREFIX, agent_key_hash, new_token

# How long a process trusts what it read about a key.
LOCAL_CACHE_SECONDS = 1.0
LOCAL_CACHE_MAX_ENTRIES = 10_000  # keys of active agents only; cleared when full


@dataclass(frozen=True)
class AgentRecord:
    name: str
    created_at: datetime
    revoked_at: datetime | None


class AgentService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        # key hash -> (agent, monotonic time after which the entry is not used)
        self._local: dict[bytes, tuple[Agent, float]] = {}
        self._lookups: dict[bytes, asyncio.Future[Agent | None]] = {}

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
        # Every process's cache entry for the key was read before the revocation: let it lapse.
        await asyncio.sleep(LOCAL_CACHE_SECONDS + 0.1)

    async def authenticate(self, key: str) -> Agent | None:
        if not key.startswith(AGENT_KEY_PREFIX):
            return None
        key_hash = agent_key_hash(key)
        local = self._local.get(key_hash)
        if local is not None and time.monotonic() < local[1]:
            return local[0]
        # One lookup per key at a time: the requests that miss together (the first ones on a
        # key, and every LOCAL_CACHE_SECONDS those of a key in steady use) share it.
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
        async with self._db.connection() as conn:
            row = await sql.active_agent_by_key_hash(conn, key_hash)
        if row is None:
            return None
        agent = Agent(row["id"], row["name"])
        if len(self._local) >= LOCAL_CACHE_MAX_ENTRIES:
            self._local.clear()
        # Dated from before the read, so `revoke`'s wait covers it.
        self._local[key_hash] = (agent, now + LOCAL_CACHE_SECONDS)
        return agent
