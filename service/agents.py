"""Support agents: created and revoked by ops, authenticated by API key.

A key is looked up in PostgreSQL, and what was read is trusted by the process for
`LOCAL_CACHE_SECONDS`: tooling that verifies many callers with one key costs one query a
second, not one a request. Nothing else caches a key, so a revocation made any way at all
(the CLI with any settings, another instance, SQL) is refused by every instance within that
time; `revoke` waits it out before it returns."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from service.audit import AuditLog
from service.errors import NotFound
from service.models import Agent, AuditEvent, EventType
from service.persistence import agents as sql
from service.persistence.db import Database
from service.tokens import AGENT_KEY_PREFIX, agent_key_hash, new_token

# How long a process trusts what it read about a key.
LOCAL_CACHE_SECONDS = 1.0
LOCAL_CACHE_MAX_ENTRIES = 10_000  # keys of active agents only; cleared when full


# An API key's name: what the audit log and customers' events show for checks made with it.
AGENT_NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_AGENT_NAME = re.compile(AGENT_NAME_PATTERN)


def check_agent_name(name: str) -> str:
    if not _AGENT_NAME.fullmatch(name):
        raise ValueError("1 to 64 characters: letters, digits, '.', '_' and '-'")
    return name


@dataclass(frozen=True)
class AgentRecord:
    id: UUID
    name: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


class AgentService:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self._db = db
        self._audit = audit
        # key hash -> (agent, monotonic time after which the entry is not used)
        self._local: dict[bytes, tuple[Agent, float]] = {}
        self._lookups: dict[bytes, asyncio.Future[Agent | None]] = {}

    async def create(
        self, name: str, *, expires_in_days: int | None = None, actor: str = "cli"
    ) -> tuple[AgentRecord, str]:
        """A new API key (`ValueError` for a bad name, `AgentExists` while an unrevoked key
        has the name); the key is not stored and cannot be shown again."""
        check_agent_name(name)
        key = new_token(AGENT_KEY_PREFIX)
        expires_at = (
            datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        )
        async with self._db.transaction() as conn:
            row = await sql.create_agent(conn, name, agent_key_hash(key), expires_at)
            await self._audit.insert(
                conn, AuditEvent(EventType.API_KEY_CREATED, actor=actor, target=name)
            )
        return _record(row), key

    async def list(self) -> list[AgentRecord]:
        async with self._db.connection() as conn:
            rows = await sql.list_agents(conn)
        return [_record(row) for row in rows]

    async def revoke(self, name: str, *, actor: str = "cli") -> None:
        async with self._db.transaction() as conn:
            row = await sql.revoke_agent(conn, name)
            if row is None:
                raise NotFound(f"No active agent named {name!r}.")
            await self._audit.insert(
                conn, AuditEvent(EventType.API_KEY_REVOKED, actor=actor, target=name)
            )
        await self._lapse()

    async def revoke_by_id(self, agent_id: UUID, *, actor: str) -> None:
        async with self._db.transaction() as conn:
            row = await sql.revoke_agent_by_id(conn, agent_id)
            if row is None:
                raise NotFound("No active API key with this id.")
            await self._audit.insert(
                conn, AuditEvent(EventType.API_KEY_REVOKED, actor=actor, target=row["name"])
            )
        await self._lapse()

    async def _lapse(self) -> None:
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
            row = await sql.use_active_key(conn, key_hash)
        if row is None:
            return None
        agent = Agent(row["id"], row["name"])
        if len(self._local) >= LOCAL_CACHE_MAX_ENTRIES:
            self._local.clear()
        # Dated from before the read, so `revoke`'s wait covers it.
        self._local[key_hash] = (agent, now + LOCAL_CACHE_SECONDS)
        return agent


def _record(row: asyncpg.Record) -> AgentRecord:
    return AgentRecord(
        id=row["id"],
        name=row["name"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
    )
