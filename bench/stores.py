"""The benchmark's own database and Redis key prefix, and bulk seeding of accounts, sessions
and PINs with the service's own code and keys (so every token and PIN is valid)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from service.accounts import EMAIL_CACHE_SECONDS, email_cache_value
from service.container import Services
from service.passwords import PasswordHasher
from service.persistence.migrations import migrate
from service.redis_store import RedisClient

# Below the Redis pool size: concurrent calls beyond it are refused, not queued.
SEED_CHUNK = 32


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    email: str


@dataclass
class SeedRow:
    token: str
    email: str
    pin: str
    replaced_pin: str


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + name))


@asynccontextmanager
async def own_database(admin_url: str) -> AsyncIterator[str]:
    """A database created for this run, migrated, and dropped at the end."""
    name = f"support_pin_bench_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(admin_url, name)
    try:
        await migrate(url)
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def delete_prefix(client: RedisClient, prefix: str) -> int:
    """SCAN + UNLINK every key under `prefix` (never FLUSHDB: the server is shared)."""
    deleted = 0
    batch: list[bytes] = []
    async for key in client.scan_iter(match=prefix.replace("*", r"\*") + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            deleted += await client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await client.unlink(*batch)
    return deleted


async def seed_accounts(db_url: str, count: int, password: str, *, first: int = 0) -> list[Account]:
    """`count` accounts in one COPY, all with one argon2 hash made by the service's hasher;
    their emails are numbered from `first`."""
    password_hash = await PasswordHasher(1).hash(password)
    accounts = [
        Account(uuid.uuid4(), f"bench-{i:07d}@example.com") for i in range(first, first + count)
    ]
    conn = await asyncpg.connect(db_url)
    try:
        await conn.copy_records_to_table(
            "accounts",
            records=((a.id, a.email, password_hash) for a in accounts),
            columns=["id", "email", "password_hash"],
        )
        await conn.execute("ANALYZE accounts")
        # Write the new pages out now rather than by the checkpointer during a measured run.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return accounts


async def seed_sessions(services: Services, accounts: list[Account]) -> list[str]:
    """One session per account, through the session store itself."""
    tokens: list[str] = []
    for start in range(0, len(accounts), SEED_CHUNK):
        chunk = accounts[start : start + SEED_CHUNK]
        tokens += await asyncio.gather(*(services.sessions.create(a.id) for a in chunk))
    return tokens


async def remember_sign_ins(services: Services, accounts: list[Account]) -> None:
    """What signing in leaves behind besides the session: the email -> account id cache entry
    that the agent's lookup then finds (sessions are seeded without argon2, see above).
    Written in pipelined batches with the service's own key and lifetime."""
    async with services.redis.client.pipeline(transaction=False) as pipe:
        for start in range(0, len(accounts), 10_000):
            for account in accounts[start : start + 10_000]:
                key = services.accounts.email_cache_key(account.email)
                assert key is not None
                pipe.set(key, email_cache_value(account.id), ex=EMAIL_CACHE_SECONDS)
            await pipe.execute()


async def load_pins(
    services: Services,
    account_ids: Iterable[uuid.UUID],
    pins: Iterable[str],
    *,
    replaced: Iterable[str] | None = None,
) -> None:
    """Active PINs written in pipelined batches, in the issue script's exact key and fields.

    With `replaced`, that PIN is written first and then replaced by the current one."""
    client = services.redis.client
    pin_service = services.pins
    ttl_ms = pin_service.ttl_seconds * 1000
    expires_ms = int(time.time() * 1000) + ttl_ms
    olds = iter(replaced) if replaced is not None else None
    async with client.pipeline(transaction=False) as pipe:
        pending = 0
        for account_id, pin in zip(account_ids, pins, strict=True):
            key = pin_service.pin_key(account_id)
            if olds is not None:
                old = pin_service.stored_pin(account_id, next(olds), expires_ms)
                pipe.hset(key, mapping=cast("dict[Any, Any]", old))
            fields = pin_service.stored_pin(account_id, pin, expires_ms)
            pipe.hset(key, mapping=cast("dict[Any, Any]", fields))
            pipe.pexpire(key, ttl_ms)
            pending += 1
            if pending >= 10_000:
                await pipe.execute()
                pending = 0
        if pending:
            await pipe.execute()


def random_pins(services: Services, count: int) -> list[str]:
    return [services.pins.new_pin() for _ in range(count)]


def other_pins(services: Services, pins: list[str]) -> list[str]:
    """For each PIN, a different one (the PIN it replaced)."""
    result = []
    for pin in pins:
        other = services.pins.new_pin()
        while other == pin:
            other = services.pins.new_pin()
        result.append(other)
    return result


async def seed_pins(services: Services, accounts: list[Account]) -> tuple[list[str], list[str]]:
    """A current PIN (which replaced an earlier one) for every account; both are returned."""
    pins = random_pins(services, len(accounts))
    old = other_pins(services, pins)
    await load_pins(services, (a.id for a in accounts), pins, replaced=old)
    return pins, old


def write_data_file(path: Path, rows: list[SeedRow]) -> None:
    """What the wrk scripts read: token, email, PIN, replaced PIN (tab-separated)."""
    path.write_text(
        "".join(f"{r.token}\t{r.email}\t{r.pin}\t{r.replaced_pin}\n" for r in rows),
        encoding="utf-8",
    )
    path.chmod(0o600)
