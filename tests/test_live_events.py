"""The live account page's events (Server-Sent Events) on real service processes: an event
raised on one instance reaches a stream held by another, a reconnect replays what it missed,
the agent's confirmation stream, and a stream ends with its session."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.container import open_services
from service.settings import Settings
from tests.conftest import PASSWORD
from tests.live import LiveServer, running_server, settings_env

pytestmark = pytest.mark.slow


@pytest.fixture
def two_instances(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = settings_env(make_settings())
    with (
        running_server(env, tmp_path / "a.log") as first,
        running_server(env, tmp_path / "b.log") as second,
    ):
        yield first, second


async def sign_up(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    address = f"live-{uuid.uuid4().hex[:10]}@example.com"
    created = await client.post("/v1/accounts", json={"email": address, "password": PASSWORD})
    assert created.status_code == 201, created.text
    token = await client.post("/v1/auth/token", data={"username": address, "password": PASSWORD})
    return address, {"Authorization": f"Bearer {token.json()['access_token']}"}


async def events_of(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parsed SSE events (comment lines skipped)."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in event:
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value


async def next_named(stream: AsyncIterator[dict[str, Any]], name: str) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        async for event in stream:
            if event["event"] == name:
                return event
        raise AssertionError(f"the stream ended before {name}")

    return await asyncio.wait_for(find(), 10)


async def test_an_event_on_one_instance_reaches_a_stream_on_another(
    two_instances: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_instances
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        _, user = await sign_up(a)
        async with b.stream("GET", "/v1/me/stream", headers=user) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events_of(response)
            await asyncio.sleep(0.2)
            pin = (await a.post("/v1/me/support-pin", headers=user)).json()["pin"]
            issued = await next_named(stream, "pin_issued")
            assert issued["id"]
            assert "pin" not in issued["data"]
            assert pin not in json.dumps(issued["data"])


async def test_a_reconnect_with_last_event_id_gets_what_it_missed(
    two_instances: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_instances
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        _, user = await sign_up(a)
        async with b.stream("GET", "/v1/me/stream", headers=user) as response:
            stream = events_of(response)
            await asyncio.sleep(0.2)
            await a.post("/v1/me/support-pin", headers=user)
            seen = await next_named(stream, "pin_issued")
        # Offline: two more PINs.
        await a.post("/v1/me/support-pin", headers=user)
        await a.post("/v1/me/support-pin", headers=user)
        async with b.stream(
            "GET", "/v1/me/stream", headers={**user, "Last-Event-ID": seen["id"]}
        ) as response:
            stream = events_of(response)
            replayed = [await next_named(stream, "pin_issued") for _ in range(2)]
        assert [event["id"] > seen["id"] for event in replayed] == [True, True]
        assert replayed[0]["id"] < replayed[1]["id"]


async def test_the_stream_ends_when_the_session_ends(
    two_instances: tuple[LiveServer, LiveServer],
) -> None:
    first, second = two_instances
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        _, user = await sign_up(a)
        async with b.stream("GET", "/v1/me/stream", headers=user) as response:
            await asyncio.sleep(0.2)
            assert (await a.post("/v1/auth/logout", headers=user)).status_code == 204

            async def drain() -> None:
                async for _ in response.aiter_lines():
                    pass

            await asyncio.wait_for(drain(), 10)  # the server closed it
        refused = await b.get("/v1/me/stream", headers=user)
        assert refused.status_code == 401


async def test_the_agent_sees_a_confirmation_decided_live(
    two_instances: tuple[LiveServer, LiveServer], make_settings: Callable[..., Settings]
) -> None:
    first, second = two_instances
    services = await open_services(make_settings())
    try:
        _, key = await services.agents.create(f"live-{id(services)}")
    finally:
        await services.close()
    agent = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=10) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        address, user = await sign_up(a)
        async with b.stream("GET", "/v1/me/stream", headers=user) as page:
            customer = events_of(page)
            await asyncio.sleep(0.2)
            asked = (
                await a.post("/v1/agent/confirmations", headers=agent, json={"email": address})
            ).json()
            requested = await next_named(customer, "confirmation_requested")
            assert requested["data"]["id"] == asked["id"]
            assert asked["code"] in requested["data"]["choices"]
            async with b.stream(
                "GET", f"/v1/agent/confirmations/{asked['id']}/stream", headers=agent
            ) as console:
                watching = events_of(console)
                assert (await next_named(watching, "status"))["data"]["status"] == "pending"
                await a.post(
                    f"/v1/me/confirmations/{asked['id']}",
                    headers=user,
                    json={"choice": asked["code"]},
                )
                assert (await next_named(watching, "status"))["data"]["status"] == "approved"
            resolved = await next_named(customer, "confirmation_resolved")
            assert resolved["data"] == {"id": asked["id"], "status": "approved"}
