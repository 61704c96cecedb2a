"""Agent keys are cached in Redis and in each process; revocation still takes effect on
every instance. Emails are never cached: a new account is found at once."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio.cluster import RedisCluster

from service.agents import AGENT_CACHE_SECONDS
from service.redis_store import RedisClient
from tests.conftest import Harness, HarnessFactory


async def _verification_status(h: Harness, agent: dict[str, str]) -> int:
    response = await h.client.post(
        "/v1/agent/verifications",
        headers=agent,
        json={"email": "nobody@example.com", "pin": "123456"},
    )
    return response.status_code


async def test_revoking_an_agent_stops_its_cached_key_on_every_instance(
    harness_factory: HarnessFactory,
) -> None:
    one = await harness_factory()
    two = await harness_factory()  # a second instance on the same stores
    name, agent = await one.agent()
    assert await _verification_status(one, agent) == 200
    assert await _verification_status(two, agent) == 200  # both have used the cache now
    key_hash = __import__("hashlib").sha256(agent["Authorization"][7:].encode()).digest()
    cache_key = one.services.redis.keys.agent_key(key_hash.hex())
    assert await one.services.redis.client.exists(cache_key) == 1

    await one.services.agents.revoke(name)

    assert await _verification_status(one, agent) == 401
    assert await _verification_status(two, agent) == 401
    # The mark outlives any cache fill that was in flight during the revocation.
    assert await one.services.redis.client.ttl(cache_key) > AGENT_CACHE_SECONDS


async def test_a_stale_cache_fill_cannot_undo_a_revocation(h: Harness) -> None:
    name, agent = await h.agent()
    key = agent["Authorization"].removeprefix("Bearer ")
    await h.services.agents.revoke(name)
    # A lookup that read Postgres before the revocation committed fills with SET NX.
    key_hash = __import__("hashlib").sha256(key.encode()).digest()
    cache_key = h.services.redis.keys.agent_key(key_hash.hex())
    stale = uuid.uuid4().bytes + name.encode()
    assert await h.services.redis.client.set(cache_key, stale, ex=60, nx=True) is None
    assert await h.services.agents.authenticate(key) is None


async def test_an_email_verified_before_its_account_exists_works_once_it_does(
    h: Harness,
) -> None:
    _, agent = await h.agent()
    email = f"later-{uuid.uuid4().hex[:10]}@example.com"
    first = await h.verify(agent, email, "123456")
    assert first == {"valid": False, "account_id": None, "verified_at": None}
    assert await h.services.accounts.id_by_email(email) is None

    await h.signup(email)
    headers = {"Authorization": f"Bearer {await h.sign_in(email)}"}
    pin = await h.issue_pin(headers)
    assert (await h.verify(agent, email, pin))["valid"] is True


async def test_email_lookups_match_case_insensitively(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    assert (await h.verify(agent, email.upper(), pin))["valid"] is True


async def test_redis_holds_no_email_address(h: Harness) -> None:
    email, _ = await h.user()
    client = h.services.redis.client
    found = [key async for key in client.scan_iter(match=h.services.redis.keys.prefix + "*")]
    assert found
    for key in found:
        assert email.encode() not in key
        value = await client.get(key) if await client.type(key) == b"string" else b""
        assert email.encode() not in (value or b"")


async def test_requests_that_miss_the_process_cache_together_share_one_lookup(
    harness_factory: HarnessFactory,
) -> None:
    one = await harness_factory()
    name, agent = await one.agent()
    key = agent["Authorization"].removeprefix("Bearer ")
    fresh = await harness_factory()  # an instance whose process cache is empty
    client = fresh.services.redis.client
    before = await _get_calls(client)

    agents = await asyncio.gather(*(fresh.services.agents.authenticate(key) for _ in range(50)))

    assert {a.name if a else None for a in agents} == {name}
    assert await _get_calls(client) - before == 1  # one read of the shared cache, not fifty


async def _get_calls(client: RedisClient) -> int:
    """GET commands the Redis server (every node of a cluster) has run so far."""
    if isinstance(client, RedisCluster):
        per_node = await client.info("commandstats", target_nodes=RedisCluster.ALL_NODES)
        return sum(int(info.get("cmdstat_get", {}).get("calls", 0)) for info in per_node.values())
    return int((await client.info("commandstats")).get("cmdstat_get", {}).get("calls", 0))
