"""Support PIN rules: issue, replace, expire, single use, limits — on real Redis and Postgres."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import INVALID, Harness, wrong_pin


async def test_issue_returns_pin_expiry_and_ttl(h: Harness) -> None:
    _, user = await h.user()
    before = datetime.now(UTC)
    response = await h.client.post("/v1/me/support-pin", headers=user)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"pin", "expires_at", "ttl_seconds"}
    assert re.fullmatch(r"[0-9]{6}", body["pin"])
    assert body["ttl_seconds"] == 1800
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert body["expires_at"].endswith("Z")
    assert (
        before + timedelta(seconds=1799)
        <= expires_at
        <= datetime.now(UTC) + timedelta(seconds=1800)
    )
    assert response.headers["cache-control"] == "no-store"


async def test_pin_length_follows_the_setting(harness_factory) -> None:
    h = await harness_factory(pin_length=8)
    _, user = await h.user()
    pins = {await h.issue_pin(user) for _ in range(5)}
    assert all(re.fullmatch(r"[0-9]{8}", pin) for pin in pins)
    assert len(pins) > 1


async def test_status_shows_active_pin_but_never_the_pin(h: Harness) -> None:
    _, user = await h.user()
    status = await h.client.get("/v1/me/support-pin", headers=user)
    assert status.json() == {"active": False, "expires_at": None}
    issued = (await h.client.post("/v1/me/support-pin", headers=user)).json()
    status = await h.client.get("/v1/me/support-pin", headers=user)
    assert status.status_code == 200
    assert status.json()["active"] is True
    # The expiry is the PIN's TTL in Redis, read again: the same moment, give or take the
    # milliseconds between the two reads.
    shown = datetime.fromisoformat(status.json()["expires_at"])
    assert abs(shown - datetime.fromisoformat(issued["expires_at"])) < timedelta(seconds=1)
    assert issued["pin"] not in status.text


async def test_right_pin_verifies_once(h: Harness) -> None:
    email, user = await h.user()
    _agent_name, agent = await h.agent()
    me = (await h.client.get("/v1/me", headers=user)).json()
    pin = await h.issue_pin(user)

    first = await h.verify(agent, email, pin)
    assert first["valid"] is True
    assert first["account_id"] == me["id"]
    verified_at = datetime.fromisoformat(first["verified_at"])
    assert abs(verified_at - datetime.now(UTC)) < timedelta(minutes=1)

    assert await h.verify(agent, email, pin) == INVALID
    status = await h.client.get("/v1/me/support-pin", headers=user)
    assert status.json()["active"] is False


async def test_email_is_matched_case_insensitively_and_spaces_in_pin_are_ignored(
    h: Harness,
) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    result = await h.verify(agent, email.upper(), f"{pin[:3]} {pin[3:]}")
    assert result["valid"] is True


async def test_new_pin_replaces_the_previous_one(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    first = await h.issue_pin(user)
    second = await h.issue_pin(user)
    if first == second:  # one chance in a million; the replacement is still what is tested
        second = await h.issue_pin(user)
    assert await h.verify(agent, email, first) == INVALID
    assert (await h.verify(agent, email, second))["valid"] is True


async def test_revoked_pin_stops_working(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    response = await h.client.delete("/v1/me/support-pin", headers=user)
    assert response.status_code == 204
    assert response.content == b""
    assert (await h.client.get("/v1/me/support-pin", headers=user)).json()["active"] is False
    assert await h.verify(agent, email, pin) == INVALID
    # Revoking with nothing active is fine and records nothing more.
    assert (await h.client.delete("/v1/me/support-pin", headers=user)).status_code == 204
    types = [e["type"] for e in await h.events(user)]
    assert types.count("revoked") == 1


async def test_pin_expires_after_its_ttl(harness_factory) -> None:
    h = await harness_factory(pin_ttl_seconds=1)
    email, user = await h.user()
    _, agent = await h.agent()
    issued = (await h.client.post("/v1/me/support-pin", headers=user)).json()
    assert issued["ttl_seconds"] == 1
    await asyncio.sleep(1.3)
    assert (await h.client.get("/v1/me/support-pin", headers=user)).json() == {
        "active": False,
        "expires_at": None,
    }
    assert await h.verify(agent, email, issued["pin"]) == INVALID


async def test_pin_is_bound_to_its_account(h: Harness) -> None:
    email_a, user_a = await h.user()
    email_b, user_b = await h.user()
    _, agent = await h.agent()
    pin_a = await h.issue_pin(user_a)
    await h.issue_pin(user_b)
    assert await h.verify(agent, email_b, pin_a) == INVALID
    assert (await h.verify(agent, email_a, pin_a))["valid"] is True


def _without_email(body: dict[str, object]) -> str:
    return repr(sorted((k, v) for k, v in body.items() if k != "email"))


async def test_all_failures_look_the_same(harness_factory) -> None:
    h = await harness_factory(pin_ttl_seconds=1)
    email, user = await h.user()
    _, agent = await h.agent()
    expired = await h.issue_pin(user)
    await asyncio.sleep(1.2)
    replaced = await h.issue_pin(user)
    current = await h.issue_pin(user)
    answers = []
    for email_used, pin in [
        ("nobody-" + email, current),  # unknown email
        (email, wrong_pin(current)),  # wrong
        (email, expired),  # expired
        (email, replaced),  # replaced
    ]:
        response = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email_used, "pin": pin}
        )
        assert response.json().pop("email") == email_used  # the address checked, echoed
        answers.append((response.status_code, _without_email(response.json())))
    used_pin = await h.issue_pin(user)
    await h.verify(agent, email, used_pin)
    used = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": email, "pin": used_pin}
    )
    answers.append((used.status_code, _without_email(used.json())))
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 200


async def test_concurrent_verifications_have_exactly_one_winner(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    results = await asyncio.gather(*(h.verify(agent, email, pin) for _ in range(25)))
    assert sum(r["valid"] for r in results) == 1
    events = await h.events(user)
    assert [e["type"] for e in events].count("verified") == 1


async def test_pin_dies_after_max_attempts(harness_factory) -> None:
    h = await harness_factory(pin_max_attempts=3, account_max_failures=20)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    for _ in range(3):
        assert await h.verify(agent, email, wrong_pin(pin)) == INVALID
    assert await h.verify(agent, email, pin) == INVALID
    assert (await h.client.get("/v1/me/support-pin", headers=user)).json()["active"] is False
    # The account is not locked: a new PIN works.
    assert (await h.verify(agent, email, await h.issue_pin(user)))["valid"] is True


async def test_account_failures_survive_a_new_pin_and_lock(harness_factory) -> None:
    h = await harness_factory(pin_max_attempts=5, account_max_failures=7)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    for _ in range(4):
        await h.verify(agent, email, wrong_pin(pin))
    pin = await h.issue_pin(user)  # must NOT reset the account's count
    for _ in range(3):
        await h.verify(agent, email, wrong_pin(pin))
    # 7 failures: locked. Even a fresh, right PIN is refused now.
    fresh = await h.issue_pin(user)
    assert await h.verify(agent, email, fresh) == INVALID
    types = [e["type"] for e in await h.events(user)]
    assert types.count("locked") == 1
    assert types.count("verify_failed") == 8


async def test_success_resets_the_account_failure_count(harness_factory) -> None:
    h = await harness_factory(pin_max_attempts=5, account_max_failures=4)
    email, user = await h.user()
    _, agent = await h.agent()
    for _ in range(3):
        pin = await h.issue_pin(user)
        for _ in range(3):
            await h.verify(agent, email, wrong_pin(pin))
        assert (await h.verify(agent, email, pin))["valid"] is True
    assert "locked" not in [e["type"] for e in await h.events(user)]


async def test_lock_lifts_after_its_time(harness_factory) -> None:
    h = await harness_factory(account_max_failures=2, account_lock_seconds=1)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    await h.verify(agent, email, wrong_pin(pin))
    await h.verify(agent, email, wrong_pin(pin))
    pin = await h.issue_pin(user)
    assert await h.verify(agent, email, pin) == INVALID
    await asyncio.sleep(1.2)
    pin = await h.issue_pin(user)
    assert (await h.verify(agent, email, pin))["valid"] is True


async def test_nothing_in_redis_contains_the_pin(harness_factory) -> None:
    # Ten digits, so a chance match inside digests or ids is out of the question.
    h = await harness_factory(pin_length=10)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    await h.verify(agent, email, wrong_pin(pin))
    redis = h.services.redis.client
    dumped = []
    async for key in redis.scan_iter(match=f"{h.services.redis.keys.prefix}*"):
        dumped.append(key)
        kind = await redis.type(key)
        if kind == b"hash":
            for field, value in (await redis.hgetall(key)).items():
                dumped += [field, value]
        elif kind == b"string":
            dumped.append(await redis.get(key))
        dumped.append(await redis.dump(key))
    assert len(dumped) >= 6  # the PIN, the failure counter and a session are there
    for blob in dumped:
        assert pin.encode() not in blob
        assert pin.encode("utf-16-le") not in blob
        assert int(pin).to_bytes(8, "big") not in blob


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@example.com"},
        {"pin": "123456"},
        {"email": "a@example.com", "pin": "12345"},
        {"email": "a@example.com", "pin": "12a456"},
        {"email": "a@example.com", "pin": 123456},
        {"email": "a\x00@example.com", "pin": "123456"},
        {"email": "a@example.com", "pin": "123456", "extra": 1},
        {"email": ["a@example.com"], "pin": "123456"},
    ],
)
async def test_bad_verification_input_is_422(h: Harness, body: dict) -> None:
    _, agent = await h.agent()
    response = await h.client.post("/v1/agent/verifications", headers=agent, json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_scripts_are_loaded_again_when_redis_has_forgotten_them(h: Harness) -> None:
    """A restarted Redis has no scripts: the first call after that loads each one again
    (on a single node over the service's pipelined connection, on a cluster by redis-py)."""
    email, user = await h.user()
    _, agent = await h.agent()
    await h.issue_pin(user)
    await h.services.redis.client.script_flush()
    pin = await h.issue_pin(user)  # the issue script
    assert (await h.verify(agent, email, wrong_pin(pin)))["valid"] is False  # limits, verify
    await h.services.redis.client.script_flush()
    assert (await h.verify(agent, email, pin))["valid"] is True
    response = await h.client.delete("/v1/me/support-pin", headers=user)  # the revoke script
    assert response.status_code == 204
