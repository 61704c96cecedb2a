"""Rate limits: each one hit, answered (429 `rate_limited` + Retry-After) and recovered from;
shared across app instances; a 429 is never an evaluated PIN guess; the proxy setting."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from ipaddress import ip_network

import httpx
import pytest
import redis

from api.deps import forwarded_client
from service.settings import Settings
from tests.conftest import PASSWORD, Harness, HarnessFactory
from tests.own_stores import redis_cluster

# Small enough to wait out in a test, wide enough that three argon2 sign-ins on a loaded
# 2-core CI machine still fall inside one window.
WINDOW_SECONDS = 3
TIGHT = f"2 per {WINDOW_SECONDS} seconds"


def assert_rate_limited(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_SECONDS
    return retry_after


async def wait_out(retry_after: int) -> None:
    # Retry-After is rounded up, so waiting it out is always enough.
    await asyncio.sleep(retry_after + 0.05)


async def sign_in(
    h: Harness, email: str, password: str = PASSWORD, forwarded_for: str | None = None
) -> httpx.Response:
    """A sign-in from a browser with no device cookie (a client that never signed in)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with h.new_client() as browser:
        return await browser.post(
            "/v1/auth/token", data={"username": email, "password": password}, headers=headers
        )


def test_defaults_are_the_documented_ones() -> None:
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert defaults["rate_limit_sign_in_per_account"] == "10/minute"
    assert defaults["rate_limit_sign_in_per_address"] == "60/minute"
    assert defaults["rate_limit_account_create_per_address"] == "20/hour"
    assert defaults["rate_limit_pin_issue_per_account"] == "10 per 10 minutes"
    assert defaults["rate_limit_verify_per_agent"] == "120/minute"
    assert defaults["rate_limit_verify_per_account"] == "30/minute"
    assert defaults["trusted_proxies"] == ()
    assert defaults["cors_allow_origins"] == ()
    assert defaults["hsts_seconds"] == 0


@pytest.mark.parametrize("bad", ["lots", "0/minute", "10/minute;100/hour", "-1/second"])
def test_bad_limit_settings_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="limit"):
        Settings(rate_limit_verify_per_agent=bad)


async def test_sign_in_per_account(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_sign_in_per_account=TIGHT)
    email = await h.signup()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for target in (email, unknown):  # known and unknown emails are limited alike
        assert (await sign_in(h, target, "wrong password!")).status_code == 401
        assert (await sign_in(h, target, "wrong password!")).status_code == 401
        retry_after = assert_rate_limited(await sign_in(h, target))
    # Another account from the same address is not affected.
    assert (await sign_in(h, await h.signup())).status_code == 200
    await wait_out(retry_after)
    assert (await sign_in(h, email)).status_code == 200


async def test_sign_in_per_address(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_sign_in_per_address=TIGHT)
    emails = [await h.signup() for _ in range(3)]
    assert (await sign_in(h, emails[0])).status_code == 200
    assert (await sign_in(h, emails[1])).status_code == 200
    retry_after = assert_rate_limited(await sign_in(h, emails[2]))
    await wait_out(retry_after)
    assert (await sign_in(h, emails[2])).status_code == 200


async def test_account_create_per_address(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_account_create_per_address=TIGHT)

    async def create() -> httpx.Response:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        return await h.client.post("/v1/accounts", json={"email": email, "password": PASSWORD})

    assert (await create()).status_code == 201
    assert (await create()).status_code == 201
    retry_after = assert_rate_limited(await create())
    await wait_out(retry_after)
    assert (await create()).status_code == 201


async def test_pin_issue_per_account(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_pin_issue_per_account=TIGHT)
    _, user = await h.user()
    _, other = await h.user()
    await h.issue_pin(user)
    await h.issue_pin(user)
    retry_after = assert_rate_limited(await h.client.post("/v1/me/support-pin", headers=user))
    await h.issue_pin(other)  # per account, not global
    await wait_out(retry_after)
    await h.issue_pin(user)


async def test_verify_per_agent(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_verify_per_agent=TIGHT)
    emails = [(await h.user())[0] for _ in range(3)]
    _, agent = await h.agent()
    _, other_agent = await h.agent()
    await h.verify(agent, emails[0], "000000")
    await h.verify(agent, emails[1], "000000")
    refused = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": emails[2], "pin": "000000"}
    )
    retry_after = assert_rate_limited(refused)
    await h.verify(other_agent, emails[2], "000000")  # per agent
    await wait_out(retry_after)
    await h.verify(agent, emails[2], "000000")


async def test_verify_per_account(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_verify_per_account=TIGHT)
    email, _ = await h.user()
    other_email, _ = await h.user()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    agents = [(await h.agent())[1] for _ in range(3)]
    for target in (email, unknown):  # known and unknown emails are limited alike
        await h.verify(agents[0], target, "000000")
        await h.verify(agents[1], target, "000000")
        # A third agent does not get a fresh allowance for the same account.
        refused = await h.client.post(
            "/v1/agent/verifications", headers=agents[2], json={"email": target, "pin": "000000"}
        )
        retry_after = assert_rate_limited(refused)
    await h.verify(agents[2], other_email, "000000")
    await wait_out(retry_after)
    await h.verify(agents[2], email, "000000")


async def test_refused_by_the_agent_limit_uses_none_of_the_account_limit(
    harness_factory: HarnessFactory,
) -> None:
    """Both verification limits are counted in one round trip; a request the agent's limit
    refuses leaves the account's allowance as it was (as if checked one after the other)."""
    h = await harness_factory(
        rate_limit_verify_per_agent="1 per 60 seconds",
        rate_limit_verify_per_account=TIGHT,
    )
    email, _ = await h.user()
    _, agent = await h.agent()
    _, other_agent = await h.agent()
    _, third_agent = await h.agent()
    await h.verify(agent, email, "000000")  # the account's first of two
    for _ in range(3):
        by_agent = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": "000000"}
        )
        assert by_agent.status_code == 429
    await h.verify(other_agent, email, "000000")  # the account's second: still allowed
    refused = await h.client.post(
        "/v1/agent/verifications", headers=third_agent, json={"email": email, "pin": "000000"}
    )
    assert_rate_limited(refused)


async def test_a_429_is_not_a_guess(harness_factory: HarnessFactory) -> None:
    """Refused verifications touch neither the PIN's tries nor the account's failures, and
    are not audited as failed verifications; the right PIN works once the window passes."""
    h = await harness_factory(rate_limit_verify_per_account=TIGHT, pin_max_attempts=3)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    wrong = f"{(int(pin) + 1) % 10**6:06d}"
    assert (await h.verify(agent, email, wrong))["valid"] is False
    assert (await h.verify(agent, email, wrong))["valid"] is False
    account_id = uuid.UUID((await h.client.get("/v1/me", headers=user)).json()["id"])
    keys = h.services.redis.keys
    client = h.services.redis.client
    for _ in range(10):  # far past PIN_MAX_ATTEMPTS=3 had these been evaluated
        response = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": wrong}
        )
        retry_after = assert_rate_limited(response)
    assert await client.hget(keys.pin(account_id), "a") == b"2"
    assert await client.get(keys.pin_state(account_id)[1]) == b"2"
    failed = [e for e in await h.events(user) if e["type"] == "verify_failed"]
    assert len(failed) == 2
    await wait_out(retry_after)
    assert (await h.verify(agent, email, pin))["valid"] is True


async def test_limits_hold_across_instances(harness_factory: HarnessFactory) -> None:
    """Two app instances on the same Redis share one allowance (no in-process counters)."""
    first = await harness_factory(rate_limit_pin_issue_per_account=TIGHT)
    second = await harness_factory(rate_limit_pin_issue_per_account=TIGHT)
    _, user = await first.user()
    await first.issue_pin(user)
    await second.issue_pin(user)
    assert_rate_limited(await first.client.post("/v1/me/support-pin", headers=user))
    assert_rate_limited(await second.client.post("/v1/me/support-pin", headers=user))


async def test_forwarded_for_is_ignored_without_trusted_proxies(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(rate_limit_sign_in_per_address=TIGHT)
    email = await h.signup()
    for spoofed in ("203.0.113.1", "203.0.113.2"):
        assert (await sign_in(h, email, forwarded_for=spoofed)).status_code == 200
    assert_rate_limited(await sign_in(h, email, forwarded_for="203.0.113.3"))


async def test_forwarded_for_from_a_trusted_proxy(harness_factory: HarnessFactory) -> None:
    # The test client's socket address is 127.0.0.1: make it the trusted proxy.
    h = await harness_factory(rate_limit_sign_in_per_address=TIGHT, trusted_proxies="127.0.0.1")
    email = await h.signup()
    # The client-chosen left part is not believed: both count against 198.51.100.7.
    for chain in ("1.1.1.1, 198.51.100.7", "2.2.2.2, 198.51.100.7"):
        assert (await sign_in(h, email, forwarded_for=chain)).status_code == 200
    assert_rate_limited(await sign_in(h, email, forwarded_for="198.51.100.7"))
    # Another client behind the same proxy has its own allowance.
    assert (await sign_in(h, email, forwarded_for="198.51.100.8")).status_code == 200


@pytest.mark.parametrize(
    ("peer", "chain", "expected"),
    [
        ("198.51.100.1", ["203.0.113.9"], "198.51.100.1"),  # untrusted peer: header ignored
        ("10.0.0.1", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.1", [], "10.0.0.1"),  # a trusted proxy that sent no header
        ("10.0.0.1", ["6.6.6.6, 203.0.113.9, 10.0.0.2"], "203.0.113.9"),  # two proxies
        ("10.0.0.1", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),  # repeated headers
        ("10.0.0.1", ["10.0.0.3, 10.0.0.2"], "10.0.0.3"),  # all trusted: the farthest hop
        ("10.0.0.1", ["203.0.113.9, not-an-ip"], "10.0.0.1"),  # garbage: stop at the proxy
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.0.0.1", ["203.0.113.9:51234"], "203.0.113.9"),  # proxies that add the port
        ("10.0.0.1", ["[2001:db8::5]:443"], "2001:db8::5"),
    ],
)
def test_forwarded_client(peer: str, chain: list[str], expected: str) -> None:
    trusted = (ip_network("10.0.0.0/8"), ip_network("::1/128"))
    assert forwarded_client(peer, chain, trusted) == expected


def test_trusted_proxies_setting_parses_lists() -> None:
    settings = Settings(trusted_proxies="10.0.0.0/8, 192.0.2.1 ,2001:db8::/32")
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "2001:db8::/32",
    ]
    with pytest.raises(ValueError, match="does not appear to be"):
        Settings(trusted_proxies="not-a-network")


@pytest.fixture(scope="module")
def cluster_ports() -> Iterator[list[int]]:
    with redis_cluster(3) as nodes:
        yield nodes.ports


@pytest.mark.slow  # starts a cluster of its own (CI's cluster pass runs the rest again)
async def test_limits_on_a_redis_cluster(
    harness_factory: HarnessFactory, cluster_ports: list[int]
) -> None:
    """REDIS_CLUSTER=true: each limit is one single-key script, so it works whichever node
    owns the key, and the limits of many accounts spread over the nodes."""
    h = await harness_factory(
        redis_url=f"redis://127.0.0.1:{cluster_ports[0]}/0",
        redis_cluster=True,
        rate_limit_pin_issue_per_account=TIGHT,
        rate_limit_verify_per_account=TIGHT,
    )
    assert type(h.services.redis.client).__name__ == "RedisCluster"
    _, agent = await h.agent()
    for _ in range(6):
        email, user = await h.user()
        await h.issue_pin(user)
        pin = await h.issue_pin(user)
        assert_rate_limited(await h.client.post("/v1/me/support-pin", headers=user))
        wrong = "1" * len(pin) if pin != "1" * len(pin) else "2" * len(pin)
        await h.verify(agent, email, wrong)
        await h.verify(agent, email, wrong)
        refused = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
        )
        assert_rate_limited(refused)
    prefix = h.services.redis.keys.prefix
    owners = set()
    for port in cluster_ports:
        node = redis.Redis(host="127.0.0.1", port=port)
        try:
            if any(True for _ in node.scan_iter(match=f"{prefix}rl:*", count=1000)):
                owners.add(port)
        finally:
            node.close()
    assert len(owners) >= 2, owners


def test_hit_members_are_unique_in_a_process_and_across_forked_workers() -> None:
    """A hit's member in the sliding log must never repeat (a repeated member replaces the
    earlier hit instead of adding one: the limit would undercount). Members are a per-process
    random prefix and a counter; uvicorn's workers are forked, so a child draws its own."""
    from service.limits import _members

    here = [_members.next() for _ in range(1000)]
    assert len(set(here)) == len(here)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first members, to the parent, then out at once
        os.write(write, " ".join(_members.next() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent_next = [_members.next() for _ in range(3)]
    assert len(child) == 3
    assert not set(child) & set(here + parent_next)
    assert child[0][:10] != parent_next[0][:10]  # a prefix of its own
