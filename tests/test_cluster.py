"""The service on a real Redis Cluster (three masters on loopback, REDIS_CLUSTER=true)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from tests.conftest import PASSWORD, HarnessFactory
from tests.own_stores import redis_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster_ports() -> Iterator[list[int]]:
    with redis_cluster(3) as nodes:
        yield nodes.ports


def _wrong(pin: str) -> str:
    return "1" * len(pin) if pin != "1" * len(pin) else "2" * len(pin)


async def test_pin_flow_and_sessions_on_a_redis_cluster(
    harness_factory: HarnessFactory, cluster_ports: list[int]
) -> None:
    # REDIS_URL names one node; the client discovers the others.
    h = await harness_factory(
        redis_url=f"redis://127.0.0.1:{cluster_ports[1]}/0",
        redis_cluster=True,
        account_max_failures=3,
    )
    assert type(h.services.redis.client).__name__ == "RedisCluster"
    _, agent = await h.agent()
    accounts: list[tuple[str, dict[str, str]]] = [await h.user() for _ in range(8)]

    for email, user in accounts:
        # Issue, status, a wrong PIN, the right one, used once.
        pin = await h.issue_pin(user)
        status = await h.client.get("/v1/me/support-pin", headers=user)
        assert status.json()["active"] is True
        assert (await h.verify(agent, email, _wrong(pin)))["valid"] is False
        assert (await h.verify(agent, email, pin))["valid"] is True
        assert (await h.verify(agent, email, pin))["valid"] is False
        # A new PIN replaces the previous one; revoking ends it.
        first, second = await h.issue_pin(user), await h.issue_pin(user)
        if first != second:
            assert (await h.verify(agent, email, first))["valid"] is False
        assert (await h.client.delete("/v1/me/support-pin", headers=user)).status_code == 204
        assert (await h.verify(agent, email, second))["valid"] is False

    # Unknown accounts go through the probe script.
    assert (await h.verify(agent, "nobody@example.com", "123456"))["valid"] is False

    # The account lock (failure counter and lock key beside the PIN, one script).
    email, user = accounts[0]
    pin = await h.issue_pin(user)
    for _ in range(3):
        await h.verify(agent, email, _wrong(pin))
    assert (await h.verify(agent, email, pin))["valid"] is False  # locked
    events = [event["type"] for event in await h.events(user)]
    assert "locked" in events

    # Sessions: sign in, sign out, the token is dead.
    other_email, other_user = accounts[1]
    assert (await h.client.get("/v1/me", headers=other_user)).status_code == 200
    assert (await h.client.post("/v1/auth/logout", headers=other_user)).status_code == 204
    assert (await h.client.get("/v1/me", headers=other_user)).status_code == 401
    token = await h.sign_in(other_email, PASSWORD)
    assert (
        await h.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200

    # The keys really are spread over the nodes, and each account's share one slot.
    prefix = h.services.settings.redis_key_prefix
    holding = 0
    slots_by_account: dict[str, set[int]] = {}
    for port in cluster_ports:
        node = redis.Redis(port=port)
        try:
            keys = [k.decode() for k in node.scan_iter(match=f"{prefix}*", count=1000)]
            holding += bool(keys)
            for key in keys:
                tag = key[key.index("{") + 1 : key.index("}")]
                slot = int(node.cluster("KEYSLOT", key))
                slots_by_account.setdefault(tag, set()).add(slot)
        finally:
            node.close()
    assert holding >= 2, "all keys landed on one node: the cluster was not exercised"
    assert slots_by_account
    assert all(len(slots) == 1 for slots in slots_by_account.values())


async def test_readiness_asks_the_cluster(
    harness_factory: HarnessFactory, cluster_ports: list[int]
) -> None:
    h = await harness_factory(
        redis_url=f"redis://127.0.0.1:{cluster_ports[0]}/0", redis_cluster=True
    )
    ready = await h.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "postgres": True, "redis": True}


async def test_a_lost_cluster_node_answers_503_fast_and_comes_back(
    harness_factory: HarnessFactory,
) -> None:
    """A master dies: its accounts get 503 `unavailable` within about the timeout (the
    cluster client's own retries and slot refreshes are bounded by it); restarted, it
    rejoins and the same service object works again."""
    with redis_cluster(3) as nodes:
        h = await harness_factory(
            redis_url=f"redis://127.0.0.1:{nodes.ports[0]}/0",
            redis_cluster=True,
            redis_timeout_seconds=1.0,
        )
        _, agent = await h.agent()
        email, user = await h.user()
        account = uuid.UUID((await h.client.get("/v1/me", headers=user)).json()["id"])
        pin_key = h.services.redis.keys.pin(account)
        owner = _owner_of(pin_key, nodes.ports)
        started = time.perf_counter()
        assert (await h.client.get("/v1/me/support-pin", headers=user)).status_code == 200
        good = time.perf_counter() - started  # what a good answer costs here, now
        await asyncio.to_thread(nodes.kill, owner)
        for _ in range(3):
            started = time.perf_counter()
            answer = await h.client.post("/v1/me/support-pin", headers=user)
            elapsed = time.perf_counter() - started
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "unavailable"
            assert answer.headers["retry-after"] == "1"
            # Within 1.5 x the 1 s timeout, plus a good answer's cost on this machine.
            assert elapsed <= 1.5 * 1.0 + 5 * good, elapsed
        await asyncio.to_thread(nodes.start, owner)
        await asyncio.to_thread(nodes.wait_until_ok)
        # The node kept no data (no persistence here): sign in again, then issue.
        user = {"Authorization": f"Bearer {await h.sign_in(email)}"}
        deadline = time.monotonic() + 20
        while True:
            answer = await h.client.post("/v1/me/support-pin", headers=user)
            if answer.status_code == 201 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert answer.status_code == 201, answer.text
        assert (await h.verify(agent, email, answer.json()["pin"]))["valid"] is True


def _owner_of(key: str, ports: list[int]) -> int:
    """The index of the node serving `key`'s slot (as the cluster itself says)."""
    cluster = RedisCluster(host="127.0.0.1", port=ports[0])
    try:
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]  # unannotated upstream
        return ports.index(int(node.port))
    finally:
        cluster.close()
