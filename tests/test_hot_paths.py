"""`api.hot`: the fast paths of PIN issuance and verification answer exactly as the routes do.

Each request is sent to two apps on the same stores, one with the hot paths and one without
(every request through FastAPI's routes), and the answers are compared: ordinary requests,
which the hot paths answer themselves, and odd ones, which they must hand to the routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from api.hot import HotPaths
from tests.conftest import Harness, HarnessFactory
from tests.test_accounts import assert_problem
from tests.test_pins import wrong_pin

# Headers every API answer carries, whichever path made it.
COMMON_HEADERS = ("content-type", "cache-control", "x-content-type-options", "x-request-id")


HOT = {"/v1/me/support-pin", "/v1/agent/verifications"}


class FallThroughs:
    """Counts the POSTs to the two hot paths that the hot-path layer of an app handed on to
    FastAPI's routes."""

    def __init__(self, h: Harness) -> None:
        layer: Any = h.app.middleware_stack
        while layer is not None and not isinstance(layer, HotPaths):
            layer = getattr(layer, "app", None)
        assert isinstance(layer, HotPaths), "the hot-path layer is in the middleware stack"
        self.paths: list[str] = []
        downstream = layer.app

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("method") == "POST" and scope["path"] in HOT:
                self.paths.append(scope["path"])
            await downstream(scope, receive, send)

        layer.app = counting


@pytest.fixture
async def pair(harness_factory: HarnessFactory) -> tuple[Harness, Harness, FallThroughs]:
    fast = await harness_factory()
    slow = await harness_factory(hot_paths=False)
    return fast, slow, FallThroughs(fast)


def same_shape(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    for name in COMMON_HEADERS:
        assert (name in a.headers) == (name in b.headers), name
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate")
    assert ("retry-after" in a.headers) == ("retry-after" in b.headers)
    body_a, body_b = a.json(), b.json()
    assert body_a.keys() == body_b.keys()
    for key in body_a:
        assert type(body_a[key]) is type(body_b[key]), key


async def test_ordinary_requests_are_answered_by_the_hot_paths_like_the_routes(
    pair: tuple[Harness, Harness, FallThroughs],
) -> None:
    fast, slow, fell = pair
    _, agent = await fast.agent()
    for h in (fast, slow):
        email, user = await h.user()
        other_email, other = await h.user()
        # Issuance, twice (the second replaces the first).
        first = await h.client.post("/v1/me/support-pin", headers=user)
        second = await h.client.post("/v1/me/support-pin", headers=user)
        assert first.status_code == second.status_code == 201
        # Verification: replaced, wrong, unknown account, right (then used).
        replaced = await h.client.post(
            "/v1/agent/verifications",
            headers=agent,
            json={"email": email, "pin": first.json()["pin"]},
        )
        pin = second.json()["pin"]
        wrong = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": wrong_pin(pin)}
        )
        unknown = await h.client.post(
            "/v1/agent/verifications",
            headers=agent,
            json={"email": "nobody-" + other_email, "pin": pin},
        )
        right = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
        )
        again = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
        )
        h.answers = [first, replaced, wrong, unknown, right, again]  # type: ignore[attr-defined]
        assert [r.json()["valid"] for r in (replaced, wrong, unknown, right, again)] == [
            False,
            False,
            False,
            True,
            False,
        ]
        assert (await h.client.post("/v1/me/support-pin", headers=other)).status_code == 201
    for a, b in zip(fast.answers, slow.answers, strict=True):  # type: ignore[attr-defined]
        same_shape(a, b)
    assert fell.paths == [], "ordinary requests must not fall through to the routes"
    # The account's events show the issues and the verification, made by the hot paths.
    events = [e["type"] for e in await fast.events(user)]
    assert events.count("issued") == 2


def odd_verification_requests(agent_key: str, email: str) -> list[dict[str, Any]]:
    good = f'{{"email": "{email}", "pin": "123456"}}'.encode()
    auth = {"Authorization": f"Bearer {agent_key}"}
    json_type = {"Content-Type": "application/json"}
    return [
        {"headers": {**json_type}, "content": good},  # no credential
        {"headers": {**json_type, "Authorization": "Basic Zm9vOmJhcg=="}, "content": good},
        {"headers": {**json_type, "Authorization": "Bearer"}, "content": good},
        {"headers": {**auth, "Content-Type": "text/plain"}, "content": good},
        {"headers": {**auth}, "content": good},  # no content type
        {"headers": {**auth, **json_type}, "content": b"{not json"},
        {"headers": {**auth, **json_type}, "content": b"[]"},
        {"headers": {**auth, **json_type}, "content": b""},
        {"headers": {**auth, **json_type}, "content": b'{"email": "a@b.c"}'},
        {"headers": {**auth, **json_type}, "content": b'{"email": "a@b.c", "pin": "12ab56"}'},
        {"headers": {**auth, **json_type}, "content": b'{"email": "a@b.c", "pin": 123456}'},
        {
            "headers": {**auth, **json_type},
            "content": b'{"email": "a@b.c", "pin": "123456", "extra": 1}',
        },
        {"headers": {**auth, **json_type}, "content": b'{"email": NaN, "pin": "123456"}'},
        {
            "headers": {**auth, **json_type},
            "content": b'{"email": "a@b.c", "pin": "123456", "n": 123456789012345678901234567890}',
        },
        {"headers": {**auth, **json_type}, "content": b'{"email": "\\ud800@b.c", "pin": "123456"}'},
        # Handled by the hot path (the last three), and still the same answers as the route's.
        {"headers": {**json_type, "Authorization": "Bearer spa_not-a-key"}, "content": good},
        {"headers": {**auth, "Content-Type": "application/json; charset=utf-8"}, "content": good},
        {
            "headers": {"Authorization": f"bearer {agent_key}", **json_type},
            "content": good,
        },
    ]


async def test_odd_verification_requests_get_the_routes_answers(
    pair: tuple[Harness, Harness, FallThroughs],
) -> None:
    fast, slow, fell = pair
    email, _ = await fast.user()
    _, agent = await fast.agent()
    key = agent["Authorization"].removeprefix("Bearer ")
    requests = odd_verification_requests(key, email)
    for request in requests:
        a = await fast.client.post("/v1/agent/verifications", **request)
        b = await slow.client.post("/v1/agent/verifications", **request)
        assert a.status_code == b.status_code, (request, a.text, b.text)
        assert a.headers["content-type"] == b.headers["content-type"], request
        assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate"), request
        assert a.json() == b.json(), request
    # Every request above but the last three fell through (those are ordinary enough).
    assert len(fell.paths) == len(requests) - 3
    # A method the route does not serve: the same 405 and Allow header.
    a = await fast.client.get("/v1/agent/verifications")
    b = await slow.client.get("/v1/agent/verifications")
    assert (a.status_code, a.headers["allow"], a.json()) == (
        b.status_code,
        b.headers["allow"],
        b.json(),
    )


async def test_odd_issuance_requests_get_the_routes_answers(
    pair: tuple[Harness, Harness, FallThroughs],
) -> None:
    fast, slow, fell = pair
    _, user = await fast.user()
    token = user["Authorization"].removeprefix("Bearer ")
    _, agent = await fast.agent()
    for headers in [
        {},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer sps_short"},
        {"Authorization": "Bearer " + token[:-1]},
        {"Authorization": "Bearer " + token + "x"},
        {"Authorization": "Bearer " + token[:4] + "!" * 22 + token[26:]},
        agent,
    ]:
        a = await fast.client.post("/v1/me/support-pin", headers=headers)
        b = await slow.client.post("/v1/me/support-pin", headers=headers)
        assert_problem(a, 401, "unauthenticated")
        assert a.json() == b.json()
        assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate") == "Bearer"
    assert len(fell.paths) == 3  # the three without a bearer credential
    status = await fast.client.get("/v1/me/support-pin", headers=user)
    assert status.status_code == 200
    assert status.json()["active"] is False


async def test_a_token_naming_another_account_issues_nothing(h: Harness, pg: Any) -> None:
    """The account tag in a session token only says where to look: a token whose tag is
    changed to another account's names no session, and issues no PIN for either account."""
    _, user = await h.user()
    _, victim = await h.user()
    token = user["Authorization"].removeprefix("Bearer ")
    victim_token = victim["Authorization"].removeprefix("Bearer ")
    forged = token[:4] + victim_token[4:26] + token[26:]
    assert forged != token
    response = await h.client.post(
        "/v1/me/support-pin", headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401, "unauthenticated")
    assert_problem(
        await h.client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "unauthenticated",
    )
    for headers in (user, victim):
        status = await h.client.get("/v1/me/support-pin", headers=headers)
        assert status.json()["active"] is False
        assert await h.events(headers) == []
