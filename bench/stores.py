"""The benchmark's own database and Redis key prefix, and bulk seeding of accounts, sessions
and PINs with the service's own code and keys (so every token and PIN is valid)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

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


async def load_pins(
    services: Services,
    account_ids: Iterable[uuid.UUID],
    pins: Iterable[str],
    *,
    replace: bool = False,
) -> None:
    """Active PINs written in pipelined batches, as the issue script stores them: the hash at
    `keys.pin(account)` with `h` = the PIN's digest and `e` = its expiry, and the PIN's TTL.

    With `replace`, each account's earlier PIN (with its count of failed tries) and its
    failure counter are deleted first: every account starts as after a right PIN, so no
    number of runs over the same accounts adds up to a dead PIN or a lock."""
    client = services.redis.client
    keys = services.redis.keys
    pin_service = services.pins
    ttl_ms = pin_service.ttl_seconds * 1000
    async with client.pipeline(transaction=False) as pipe:
        pending = 0
        for account_id, pin in zip(account_ids, pins, strict=True):
            key = keys.pin(account_id)
            if replace:
                pipe.unlink(*keys.pin_state(account_id)[:2])  # the PIN and the failure counter
            pipe.hset(key, "h", pin_service.digest(account_id, pin))
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
    """A current PIN for every account, and a replaced one: any other PIN, since only the
    current PIN's digest is stored. Both are returned."""
    pins = random_pins(services, len(accounts))
    await load_pins(services, (a.id for a in accounts), pins)
    return pins, other_pins(services, pins)


def write_data_file(path: Path, rows: list[SeedRow]) -> None:
    """What the wrk scripts read: token, email, PIN, replaced PIN (tab-separated)."""
    path.write_text(
        "".join(f"{r.token}\t{r.email}\t{r.pin}\t{r.replaced_pin}\n" for r in rows),
        encoding="utf-8",
    )
    path.chmod(0o600)
