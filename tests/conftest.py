"""Fixtures: a throw-away database and Redis key prefix per run, the app on real stores."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api.app import create_app
from service.container import Services
from service.persistence.migrations import migrate
from service.settings import RATE_LIMIT_NAMES, Settings
from tests.stores import TestStores, database_url, test_stores

# Fixtures shared beyond this file: `smtp`, a real SMTP server.
pytest_plugins = ("tests.mailbox",)

PASSWORD = "correct horse battery staple"
PROBLEM = "application/problem+json"
# A verification's answer for every way of being wrong.
INVALID = {"valid": False, "account_id": None, "verified_at": None}


def wrong_pin(pin: str) -> str:
    return pin[:-1] + str((int(pin[-1]) + 1) % 10)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= body.keys()
    assert body["status"] == status
    assert body["code"] == code
    return body


# Every test client comes from one address, and some tests sign in or sign up many times:
# rate limits are generous unless a test sets its own (tests/test_rate_limits.py does).
GENEROUS_RATE_LIMITS: dict[str, Any] = {
    f"rate_limit_{name}": "10000/minute" for name in RATE_LIMIT_NAMES
}


@pytest.fixture(scope="session")
def stores() -> Iterator[TestStores]:
    with test_stores() as found:
        yield found


@pytest.fixture(scope="session")
async def db_url(stores: TestStores) -> AsyncIterator[str]:
    """A database of this run's own, dropped at the end: a developer's data is never touched."""
    name = f"support_pin_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(stores.postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(stores.postgres_admin_url, name)
    await migrate(url)
    yield url
    admin = await asyncpg.connect(stores.postgres_admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def make_settings(db_url: str, stores: TestStores) -> AsyncIterator[Callable[..., Settings]]:
    """Settings on the test stores, with a Redis key prefix of this test's own (its keys are
    deleted afterwards; nothing else in that Redis is touched)."""
    prefix = f"test:{secrets.token_hex(6)}:"

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": db_url,
            "redis_url": stores.redis_url,
            "redis_cluster": stores.redis_cluster,
            "redis_key_prefix": prefix,
            "secret_key": "test-secret-key-" + "x" * 32,
            **GENEROUS_RATE_LIMITS,
            **overrides,
        }
        return Settings(**values)

    yield build
    # The single node too when the suite runs on a cluster: some tests use it there.
    for url in dict.fromkeys([stores.redis_url, stores.single_node_redis]):
        client = redis.asyncio.Redis.from_url(url)
        try:
            async for key in client.scan_iter(match=f"{prefix}*", count=1000):
                await client.unlink(key)
        finally:
            await client.aclose()


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    services: Services
    transport: httpx.AsyncBaseTransport

    def new_client(self) -> httpx.AsyncClient:
        """Another client of the same app, with cookies of its own (another browser)."""
        return httpx.AsyncClient(transport=self.transport, base_url="http://testserver")

    async def signup(self, email: str | None = None, password: str = PASSWORD) -> str:
        email = email or f"user-{uuid.uuid4().hex[:12]}@example.com"
        response = await self.client.post(
            "/v1/accounts", json={"email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        return email

    async def sign_in(self, email: str, password: str = PASSWORD) -> str:
        response = await self.client.post(
            "/v1/auth/token", data={"username": email, "password": password}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def user(self) -> tuple[str, dict[str, str]]:
        """A new account, signed in: its email and auth headers."""
        email = await self.signup()
        return email, {"Authorization": f"Bearer {await self.sign_in(email)}"}

    async def agent(self, name: str | None = None) -> tuple[str, dict[str, str]]:
        agent, key = await self.services.agents.create(name or f"agent-{uuid.uuid4().hex[:8]}")
        return agent.name, {"Authorization": f"Bearer {key}"}

    async def issue_pin(self, headers: dict[str, str]) -> str:
        response = await self.client.post("/v1/me/support-pin", headers=headers)
        assert response.status_code == 201, response.text
        pin: str = response.json()["pin"]
        return pin

    async def verify(self, agent_headers: dict[str, str], email: str, pin: str) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/agent/verifications", headers=agent_headers, json={"email": email, "pin": pin}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        # The address as the service spells it: shown to the agent, checked where it matters.
        assert isinstance(body.pop("email"), str)
        assert body.pop("subject") is None  # set only for a check by the provider's subject
        return body

    async def events(self, headers: dict[str, str]) -> list[dict[str, Any]]:
        response = await self.client.get("/v1/me/support-pin/events", headers=headers)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness_factory(make_settings: Callable[..., Settings]) -> AsyncIterator[HarnessFactory]:
    """Build apps with overridden settings; all are shut down after the test."""
    stack: list[tuple[AbstractAsyncContextManager[Any], httpx.AsyncClient]] = []

    async def build(**overrides: Any) -> Harness:
        app = create_app(make_settings(**overrides))
        # The lifespan as a server runs it: its state goes into every request's scope.
        lifespan = app.router.lifespan_context(app)
        state = await lifespan.__aenter__()
        assert state is not None

        async def served(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=served)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        stack.append((lifespan, client))
        return Harness(app, client, state["services"], transport)

    yield build
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def h(harness_factory: HarnessFactory) -> Harness:
    return await harness_factory()


@pytest.fixture
async def pg(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, for looking behind the API."""
    conn = await asyncpg.connect(db_url)
    yield conn
    await conn.close()


def run_concurrently(*coros: Awaitable[Any]) -> Awaitable[list[Any]]:
    return asyncio.gather(*coros)
