"""Agent keys are trusted by each process for a second; revocation, however it is made,
takes effect on every instance within that time. Emails are never cached."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from service.agents import LOCAL_CACHE_SECONDS
from tests.conftest import INVALID, Harness, HarnessFactory


async def _verification_status(h: Harness, agent: dict[str, str]) -> int:
    response = await h.client.post(
        "/v1/agent/verifications",
        headers=agent,
        json={"email": "nobody@example.com", "pin": "123456"},
    )
    return response.status_code


async def test_revoking_an_agent_stops_its_key_on_every_instance(
    harness_factory: HarnessFactory,
) -> None:
    one = await harness_factory()
    two = await harness_factory()  # a second instance on the same stores
    name, agent = await one.agent()
    assert await _verification_status(one, agent) == 200
    assert await _verification_status(two, agent) == 200  # both trust the key now

    await one.services.agents.revoke(name)

    assert await _verification_status(one, agent) == 401
    assert await _verification_status(two, agent) == 401


async def test_a_key_revoked_behind_the_service_is_refused_within_a_second(
    harness_factory: HarnessFactory, pg: asyncpg.Connection
) -> None:
    """A revocation made without this service's settings (another Redis prefix, or SQL)."""
    one = await harness_factory()
    two = await harness_factory()
    name, agent = await one.agent()
    assert await _verification_status(one, agent) == 200
    assert await _verification_status(two, agent) == 200

    await pg.execute("UPDATE agents SET revoked_at = now() WHERE name = $1", name)
    revoked_at = time.monotonic()
    statuses: dict[int, int] = {}
    while len(statuses) < 2 and time.monotonic() - revoked_at < 10:
        for index, instance in enumerate((one, two)):
            if index not in statuses and await _verification_status(instance, agent) == 401:
                statuses[index] = 401
                assert time.monotonic() - revoked_at <= LOCAL_CACHE_SECONDS + 0.5
        await asyncio.sleep(0.05)
    assert statuses == {0: 401, 1: 401}


async def test_an_email_verified_before_its_account_exists_works_once_it_does(
    h: Harness,
) -> None:
    _, agent = await h.agent()
    email = f"later-{uuid.uuid4().hex[:10]}@example.com"
    assert await h.verify(agent, email, "123456") == INVALID
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
