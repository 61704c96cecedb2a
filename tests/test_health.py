"""Liveness, readiness, and the event loop staying free while passwords are hashed."""

from __future__ import annotations

import asyncio
import socket

from tests.conftest import PASSWORD, Harness


async def test_healthz(h: Harness) -> None:
    response = await h.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_stores_answer(h: Harness) -> None:
    response = await h.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "postgres": True, "redis": True}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_readyz_is_503_when_redis_does_not_answer(harness_factory) -> None:
    h = await harness_factory(
        redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_timeout_seconds=0.5
    )
    response = await h.client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "postgres": True, "redis": False}
    # Routes that need Redis answer 503 `unavailable`, not 500.
    _, agent = await h.agent()
    verification = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": "a@example.com", "pin": "123456"}
    )
    assert verification.status_code == 503
    assert verification.json()["code"] == "unavailable"
    assert verification.headers["retry-after"] == "1"


async def test_health_answers_while_sign_ins_are_hashing(h: Harness) -> None:
    """argon2 runs in worker threads, so health checks are answered *while* hashes run.
    Counted, not timed: were hashing done on the event loop, no request could ever be
    answered while a hash is in progress."""
    email = await h.signup()
    hasher = h.services.accounts.hasher
    storm = 24
    sign_ins = [
        asyncio.create_task(
            h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        )
        for _ in range(storm)
    ]
    answered_while_hashing = 0
    while not all(task.done() for task in sign_ins):
        response = await h.client.get("/healthz")
        assert response.status_code == 200
        if hasher.in_progress:
            answered_while_hashing += 1
        await asyncio.sleep(0)  # in-process requests never suspend: let the storm run
    results = await asyncio.gather(*sign_ins)
    assert all(r.status_code == 200 for r in results)
    assert answered_while_hashing >= storm, answered_while_hashing
