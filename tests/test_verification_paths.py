"""A verification takes one Redis step on a single node when the caller's account is cached
(`PinService.verify_by_cached_email`), two otherwise (`service/verifications.py`). Both ways
must agree with each other and with issuance: the account's key names and the PIN's bound
digest are computed in Lua there and in Python here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as redis_asyncio

from service.accounts import email_cache_value
from service.pins import _BOUND_DIGEST
from service.redis_store import account_tag
from tests.conftest import Harness, HarnessFactory
from tests.own_stores import RedisServer
from tests.stores import TestStores
from tests.test_pins import INVALID, wrong_pin


@pytest.fixture
async def h(harness_factory: HarnessFactory, stores: TestStores) -> Harness:
    """On a single Redis node, also when the suite runs on a cluster (TEST_REDIS_CLUSTER)."""
    return await harness_factory(redis_url=stores.single_node_redis, redis_cluster=False)


async def _account_id(h: Harness, user: dict[str, str]) -> uuid.UUID:
    return uuid.UUID((await h.client.get("/v1/me", headers=user)).json()["id"])


async def _commands_run_by(h: Harness, body: dict[str, str], agent: dict[str, str]) -> list[str]:
    """The commands the service sent to Redis (not those its scripts ran) while answering one
    verification, seen by MONITOR between two markers of the test's own."""
    client = h.services.redis.client
    assert isinstance(client, redis_asyncio.Redis)
    marker = f"marker-{uuid.uuid4().hex}"
    seen: list[str] = []
    async with client.monitor() as monitor:
        await client.echo(marker)
        while (await monitor.next_command())["command"] != f"ECHO {marker}":
            pass
        response = await h.client.post("/v1/agent/verifications", headers=agent, json=body)
        assert response.status_code == 200, response.text
        await client.echo(marker)
        while (command := await monitor.next_command())["command"] != f"ECHO {marker}":
            if command["client_type"] != "lua":
                seen.append(command["command"].split(" ", 1)[0].lower())
    return seen


async def test_the_scripts_bind_a_pin_to_its_account_as_python_does(h: Harness) -> None:
    script = _BOUND_DIGEST + "return bound_digest(ARGV[1], ARGV[2])"
    pins = h.services.pins
    client = h.services.redis.client
    for _ in range(100):
        account_id, pin = uuid.uuid4(), pins.new_pin()
        stored = pins._digest(account_id, pin)
        assert len(stored) == 16
        assert await client.eval(script, 0, account_tag(account_id), pins._secret(pin)) == stored


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A Redis server of the test's own: what MONITOR shows is this test's traffic alone."""
    server = RedisServer(tmp_path)
    server.start()
    yield server.url
    server.stop()


async def test_a_cached_account_is_verified_in_one_redis_command(
    harness_factory: HarnessFactory, own_redis: str
) -> None:
    h = await harness_factory(redis_url=own_redis, redis_cluster=False)
    email, user = await h.user()  # signing in caches the email's account
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
    # From here on the agent's key is cached in the process, the unknown email in Redis.
    assert await h.verify(agent, unknown, "123456") == INVALID

    for body in (
        {"email": email, "pin": wrong_pin(pin)},
        {"email": email, "pin": pin},
        {"email": email, "pin": pin},  # used up
        {"email": unknown, "pin": "123456"},
    ):
        assert await _commands_run_by(h, body, agent) == ["evalsha"], body


async def test_an_account_missing_from_the_cache_is_looked_up_and_verified(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    cache_key = h.services.accounts.email_cache_key(email)
    assert cache_key is not None
    client = h.services.redis.client
    assert await client.delete(cache_key) == 1  # as an hour after signing in

    account_id = await _account_id(h, user)
    failures_key = h.services.redis.keys.pin_failures(account_id)

    assert (await h.verify(agent, email, wrong_pin(pin)))["valid"] is False
    assert await client.get(failures_key) == b"1"  # counted on the right account
    assert await client.get(cache_key) == email_cache_value(account_id)  # cached again
    assert (await h.verify(agent, email, pin))["valid"] is True  # now in one step
    assert await client.get(failures_key) is None


def _damaged(account_id: uuid.UUID) -> list[bytes]:
    """Cache values for the account that the service never writes."""
    tag = account_tag(account_id)
    other_spelling = tag[:-1] + chr(ord(tag[-1]) + 1)  # decodes to the same 16 bytes
    return [b"not an id", account_id.bytes, other_spelling.encode(), ("+" + tag[1:]).encode()]


async def test_a_damaged_cache_entry_is_not_trusted(
    harness_factory: HarnessFactory, stores: TestStores
) -> None:
    for h in (  # both ways, as in the test below
        await harness_factory(),
        await harness_factory(redis_url=stores.single_node_redis, redis_cluster=False),
    ):
        email, user = await h.user()
        _, agent = await h.agent()
        cache_key = h.services.accounts.email_cache_key(email)
        assert cache_key is not None
        for damaged in _damaged(await _account_id(h, user)):
            pin = await h.issue_pin(user)
            await h.services.redis.client.set(cache_key, damaged, ex=60)
            # Looked up in PostgreSQL instead.
            assert (await h.verify(agent, email, pin))["valid"] is True, damaged


async def test_a_pin_digest_copied_to_another_account_does_not_verify_there(
    harness_factory: HarnessFactory, stores: TestStores
) -> None:
    # Both ways, on this suite's Redis (a cluster under TEST_REDIS_CLUSTER: two steps) and on
    # a single node (one step).
    for h in (
        await harness_factory(),
        await harness_factory(redis_url=stores.single_node_redis, redis_cluster=False),
    ):
        _, mallory = await h.user()
        victim_email, victim = await h.user()
        _, agent = await h.agent()
        known_pin = await h.issue_pin(mallory)
        await h.issue_pin(victim)
        client = h.services.redis.client
        keys = h.services.redis.keys
        stolen = await client.hget(keys.pin(await _account_id(h, mallory)), "h")
        assert stolen is not None
        # Someone who can write to Redis puts Mallory's digest in the victim's PIN.
        await client.hset(keys.pin(await _account_id(h, victim)), "h", stolen)

        assert await h.verify(agent, victim_email, known_pin) == INVALID


async def test_a_verification_is_limited_before_the_account_is_read(
    harness_factory: HarnessFactory, stores: TestStores, pg: asyncpg.Connection
) -> None:
    h = await harness_factory(
        redis_url=stores.single_node_redis,
        redis_cluster=False,
        rate_limit_verify_per_account="2/minute",
    )
    email, user = await h.user()
    agent_name, agent = await h.agent()
    pin = await h.issue_pin(user)
    for _ in range(2):
        assert (await h.verify(agent, email, wrong_pin(pin)))["valid"] is False
    response = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
    )
    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"
    assert 0 < int(response.headers["retry-after"]) <= 60
    # Not a guess: no row, and the PIN still works once the limit lets the agent through.
    rows = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE agent_name = $1 AND type = 'verify_failed'",
        agent_name,
    )
    assert rows == 2
    failures = await h.services.redis.client.get(
        h.services.redis.keys.pin_failures(await _account_id(h, user))
    )
    assert failures == b"2"
