"""The service's scripts share one pipelined Redis connection per process (single node):
`service/redis_store.py:_ScriptRunner`. Replies are matched to callers by order alone, so
these tests make sure that order survives concurrency, callers that stop waiting, a lost
connection and a server that stops answering."""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.cluster import RedisCluster

from service.errors import Unavailable
from service.redis_store import Keys, RedisStore, make_client
from tests.conftest import Harness, HarnessFactory
from tests.stores import TestStores

# Echoes its argument after a little work of its own, so replies are told apart.
ECHO = "return {ARGV[1], redis.call('INCR', KEYS[1])}"


@pytest.fixture
async def h(harness_factory: HarnessFactory, stores: TestStores) -> Harness:
    """On a single Redis node, also when the suite runs on a cluster (TEST_REDIS_CLUSTER)."""
    return await harness_factory(redis_url=stores.single_node_redis, redis_cluster=False)


async def connections_received(client: redis_asyncio.Redis | RedisCluster) -> int:
    assert isinstance(client, redis_asyncio.Redis)
    info = await client.info("stats")
    return int(info["total_connections_received"])


async def echo_calls(
    store: RedisStore, key: str, count: int, *, scripts_only: bool = False
) -> list[asyncio.Task[object]]:
    echo = store.script(ECHO)

    async def call(n: int) -> object:
        async with store.guard(scripts_only=scripts_only):
            return await echo(keys=[key], args=[str(n)])

    tasks = [asyncio.create_task(call(n)) for n in range(count)]
    await asyncio.sleep(0)  # every task has queued its command
    return tasks


async def test_concurrent_calls_share_one_connection_and_each_gets_its_own_reply(
    h: Harness,
) -> None:
    store = h.services.redis
    key = store.keys.prefix + "pipelining:counter"
    await (await echo_calls(store, key, 1))[0]  # the connection exists
    before = await connections_received(store.client)

    replies = await asyncio.gather(*await echo_calls(store, key, 300))

    assert [reply[0] for reply in replies] == [str(n).encode() for n in range(300)]  # type: ignore[index]
    # Each reply belongs to its own call: the counter values are all different.
    assert len({reply[1] for reply in replies}) == 300  # type: ignore[index]
    assert await connections_received(store.client) - before == 0


async def test_callers_that_stop_waiting_do_not_shift_the_replies_of_the_others(
    h: Harness,
) -> None:
    store = h.services.redis
    key = store.keys.prefix + "pipelining:counter"
    tasks = await echo_calls(store, key, 90)
    for task in tasks[::3]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    for n, result in enumerate(results):
        if n % 3 == 0:
            assert isinstance(result, asyncio.CancelledError)
        else:
            assert result[0] == str(n).encode()  # type: ignore[index]
    # The connection stays in step for the next caller too.
    assert (await (await echo_calls(store, key, 1))[0])[0] == b"0"  # type: ignore[index]


async def test_a_lost_connection_is_replaced_and_the_waiting_call_tried_once_more(
    h: Harness,
) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)  # the issue script made the connection
    client = h.services.redis.client
    runner = h.services.redis._direct
    assert runner is not None
    assert runner._conn is not None
    # This process's script connection only (another service may share the server).
    host, port = runner._conn._transport.get_extra_info("sockname")[:2]
    assert await client.client_kill_filter(addr=f"{host}:{port}") == 1

    # The verification's two scripts run on a new connection, without a 503.
    assert (await h.verify(agent, email, pin))["valid"] is True


@pytest.mark.parametrize("scripts_only", [False, True], ids=["guard timer", "connection timer"])
async def test_a_connection_that_stops_answering_is_dropped_after_the_timeout(
    harness_factory: HarnessFactory, stores: TestStores, scripts_only: bool
) -> None:
    """With the guard's own deadline, and with only the connection's (`scripts_only`, the
    hot paths' steps): either way the call fails within the timeout, not when the server
    answers again, and the connection is replaced."""
    h = await harness_factory(
        redis_url=stores.single_node_redis, redis_cluster=False, redis_timeout_seconds=0.3
    )
    store = h.services.redis
    key = store.keys.prefix + "pipelining:counter"
    await (await echo_calls(store, key, 1))[0]
    client = store.client
    before = await connections_received(client)
    await client.execute_command("CLIENT", "PAUSE", "3000", "WRITE")  # INCR waits
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(Unavailable):
            await (await echo_calls(store, key, 1, scripts_only=scripts_only))[0]
        waited = loop.time() - started
    finally:
        await client.execute_command("CLIENT", "UNPAUSE")
    assert 0.3 <= waited < 2.0  # the timeout, not the pause (the bound is loose on purpose)

    # Answered again, on a new connection: the old one, whose reply never came in time, was
    # dropped rather than kept with a command of nobody's at the head of its line.
    assert (await (await echo_calls(store, key, 1))[0])[0] == b"0"  # type: ignore[index]
    assert await connections_received(client) - before == 1


async def test_the_shared_connection_has_tcp_keepalive(h: Harness) -> None:
    """Nobody checks it for health before use, as redis-py does for its pooled connections
    (a PING after 30 s of quiet): the kernel's keepalive probes, which redis-py's connection
    turns on by default (idle 30 s), find a vanished peer and keep a NAT's entry alive. This
    fails if a redis-py upgrade or a setting turns them off."""
    store = h.services.redis
    await (await echo_calls(store, store.keys.prefix + "pipelining:counter", 1))[0]
    runner = store._direct
    assert runner is not None
    assert runner._conn is not None
    sock = runner._conn._transport.get_extra_info("socket")

    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 60


async def test_a_server_that_accepts_but_never_answers_costs_one_timeout() -> None:
    """Making the connection is bounded too, waiting for another caller's attempt included:
    redis-py reads the handshake's replies with no socket timeout, a stopped server's kernel
    still accepts connections, and a step in a guard without a timer of its own has no other
    deadline. Five callers at once each fail within about one timeout, not one after the
    other's."""
    accepted: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(
        make_client(f"redis://127.0.0.1:{port}", cluster=False, timeout=0.3, pool_size=4),
        Keys("test:"),
        timeout=0.3,
    )
    script = store.script("return 1")
    loop = asyncio.get_running_loop()

    async def call() -> float:
        started = loop.time()
        with pytest.raises(Unavailable):
            async with store.guard(scripts_only=True):
                await asyncio.wait_for(script(keys=[], args=[]), timeout=10)
        return loop.time() - started

    try:
        waited = await asyncio.gather(*(call() for _ in range(5)))
        assert max(waited) < 0.9, waited  # one timeout each (0.3 s), not up to five in a row
        assert accepted  # it did connect: the handshake is what went unanswered
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
