"""The Redis side through redis-py's public client: scripts from `service/lua/`, a retry
after a restart, bounded waits, and PIN state that cannot be moved between accounts."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from service.errors import Unavailable
from service.redis_store import Keys, RedisStore, make_client
from tests.conftest import INVALID, Harness, HarnessFactory, wrong_pin
from tests.own_stores import RedisServer

LUA = resources.files("service").joinpath("lua")


def _lua_files() -> list[str]:
    return sorted(p.name for p in LUA.iterdir() if p.name.endswith(".lua"))


async def _account_id(h: Harness, user: dict[str, str]) -> uuid.UUID:
    return uuid.UUID((await h.client.get("/v1/me", headers=user)).json()["id"])


@pytest.mark.parametrize("name", _lua_files())
def test_every_script_starts_with_a_header_naming_its_keys_and_answer(name: str) -> None:
    source = LUA.joinpath(name).read_text("utf-8")
    header = "\n".join(line for line in source.splitlines() if line.startswith("--"))
    assert source.startswith("-- ")
    assert "KEYS[1]" in header
    assert "Returns" in header
    # Every key comes from KEYS: no script builds a key name (it would break on a cluster).
    body = "\n".join(line for line in source.splitlines() if not line.startswith("--"))
    assert ".. '{'" not in body
    assert "'{' .." not in body


def test_no_python_module_of_the_service_holds_lua() -> None:
    root = Path(str(resources.files("service")))
    for module in root.rglob("*.py"):
        assert "redis.call(" not in module.read_text("utf-8"), module


async def test_an_issued_pin_stores_a_full_length_keyed_digest(h: Harness) -> None:
    _, user = await h.user()
    pin = await h.issue_pin(user)
    account = await _account_id(h, user)
    stored = await h.services.redis.client.hgetall(h.services.redis.keys.pin(account))
    assert set(stored) == {b"h", b"e"}  # the digest, and the expiry issuance answered
    assert stored[b"h"] == h.services.pins.digest(account, pin)
    assert pin.encode() not in stored[b"e"]
    assert len(stored[b"h"]) == 32
    assert pin.encode() not in stored[b"h"]


async def test_a_pin_digest_copied_to_another_account_does_not_verify_there(h: Harness) -> None:
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


async def test_a_verification_is_limited_before_the_pin_is_checked(
    harness_factory: HarnessFactory, pg: asyncpg.Connection
) -> None:
    h = await harness_factory(rate_limit_verify_per_account="2/minute")
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
    # Not a guess: no row, and the account's failure count is unchanged.
    rows = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE agent_name = $1 AND type = 'verify_failed'",
        agent_name,
    )
    assert rows == 2
    failures_key = h.services.redis.keys.pin_state(await _account_id(h, user))[1]
    assert await h.services.redis.client.get(failures_key) == b"2"


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    folder = Path(tempfile.mkdtemp(prefix="support-pin-redis-"))
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
async def test_requests_after_a_redis_restart_succeed_without_a_503(
    harness_factory: HarnessFactory, private_redis: RedisServer
) -> None:
    h = await harness_factory(redis_url=private_redis.url, redis_cluster=False)
    email, user = await h.user()
    _, agent = await h.agent()
    first = await h.issue_pin(user)
    assert (await h.verify(agent, email, first))["valid"] is True

    # The pooled connections now point at a server that is gone; the new one has no scripts.
    private_redis.kill()
    private_redis.start()

    response = await h.client.post("/v1/me/support-pin", headers=user)
    # The session lived in the old server's memory only if it was not persisted: the
    # private server appends every write, so it survives and the request must succeed.
    assert response.status_code == 201, response.text
    assert (await h.verify(agent, email, response.json()["pin"]))["valid"] is True


async def test_a_server_that_accepts_but_never_answers_is_unavailable_not_a_hang() -> None:
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
    script = store.script("rate_limit_hit")

    async def call() -> None:
        with pytest.raises(Unavailable):
            async with store.guard():
                await script(keys=["test:k"], args=[1, 1000, "m"])

    try:
        # A generous outer bound: the guard's own deadline is what ends each call.
        await asyncio.wait_for(asyncio.gather(*(call() for _ in range(5))), timeout=30)
        assert accepted  # it did connect: the reply is what never came
    finally:
        await store.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


def test_key_names_carry_the_account_tag_and_a_prefix() -> None:
    account = uuid.uuid4()
    keys = Keys("p:")
    tags = {re.search(r"\{[^}]+\}", key).group(0) for key in keys.pin_state(account)}  # type: ignore[union-attr]  # every name has a tag
    assert len(tags) == 1
    assert all(key.startswith("p:") for key in keys.pin_state(account))
    assert keys.pin(account) == keys.pin_state(account)[0]
