"""An unknown email and a wrong secret cannot be told apart: same status, same body, same
headers, and response times whose medians stay within a wide factor of each other (the gap
this guards against, a skipped argon2 or a skipped store round trip, is many times wider)."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.conftest import INVALID, PASSWORD, Harness

# Headers that differ per request by design.
FIRST_CHECKS = 200  # addresses of each kind checked once
_PER_REQUEST = {"x-request-id", "date", "content-length"}


def comparable(response: httpx.Response) -> tuple[int, str, dict[str, str]]:
    """The answer less what differs per request: its id, its length, and the address a
    verification echoes (the one the agent typed)."""
    headers = {k: v for k, v in response.headers.items() if k not in _PER_REQUEST}
    text = response.text
    if response.headers.get("content-type") == "application/json":
        body = response.json()
        if isinstance(body, dict) and "email" in body:
            body.pop("email")
            text = json.dumps(body, sort_keys=True)
    return response.status_code, text, headers


def unknown_email() -> str:
    return f"nobody-{uuid.uuid4().hex[:10]}@example.com"


async def median_seconds(
    cases: dict[str, Callable[[], Awaitable[httpx.Response]]], rounds: int
) -> dict[str, float]:
    """Median time per case over `rounds`, the cases interleaved so that load on the shared
    machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, send in cases.items():
            started = time.perf_counter()
            await send()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


async def test_sign_in_answers_alike(h: Harness) -> None:
    email = await h.signup()

    def sign_in(username: str, password: str) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: h.client.post(
            "/v1/auth/token", data={"username": username, "password": password}
        )

    wrong_password = await sign_in(email, PASSWORD + "!")()
    unknown = await sign_in(unknown_email(), PASSWORD)()
    assert wrong_password.status_code == 401
    assert comparable(wrong_password) == comparable(unknown)

    medians = await median_seconds(
        {
            "wrong password": sign_in(email, PASSWORD + "!"),
            "unknown email": sign_in(unknown_email(), PASSWORD),
        },
        rounds=15,
    )
    ratio = medians["unknown email"] / medians["wrong password"]
    # Both pay one argon2 verification (tens of ms); without the dummy hash an unknown email
    # would answer after one indexed query, more than ten times faster.
    assert 0.5 < ratio < 2.0, medians


async def test_verification_answers_alike(h: Harness) -> None:
    email, user = await h.user()
    without_pin, _ = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    wrong = f"{(int(pin) + 1) % 10**6:06d}"

    def verify(target: str, guess: str) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": target, "pin": guess}
        )

    answers = [
        await verify(email, wrong)(),
        await verify(unknown_email(), wrong)(),
        await verify(without_pin, wrong)(),
    ]
    assert len({comparable_key(answer) for answer in answers}) == 1
    assert answers[0].json() == {**INVALID, "email": email, "subject": None}

    medians = await median_seconds(
        {"wrong PIN": verify(email, wrong), "unknown email": verify(unknown_email(), wrong)},
        rounds=16,  # 1 + 16 failures stay under ACCOUNT_MAX_FAILURES=20: no lock mid-way
    )
    ratio = medians["unknown email"] / medians["wrong PIN"]
    # Both cost one account lookup, one Redis script and one committed audit row.
    assert 0.5 < ratio < 2.0, medians


def comparable_key(response: httpx.Response) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    status, text, headers = comparable(response)
    return status, text, tuple(sorted(headers.items()))


@pytest.mark.slow
async def test_a_first_verification_takes_as_long_for_a_known_address_as_for_an_unknown_one(
    h: Harness,
) -> None:
    """An agent's first check of an address, 200 addresses of accounts that just signed up
    (nothing about them is cold) against 200 addresses of no account, interleaved: the
    medians agree within 5 %, so time does not tell an agent which addresses exist."""
    _, agent = await h.agent()
    known = [await h.signup() for _ in range(FIRST_CHECKS)]
    unknown = [unknown_email() for _ in range(FIRST_CHECKS)]
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for index in range(FIRST_CHECKS):
        pair = [("known", known[index]), ("unknown", unknown[index])]
        for kind, email in pair if index % 2 else reversed(pair):
            started = time.perf_counter()
            response = await h.client.post(
                "/v1/agent/verifications", headers=agent, json={"email": email, "pin": "123456"}
            )
            times[kind].append(time.perf_counter() - started)
            assert response.json()["valid"] is False
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    assert abs(medians["unknown"] / medians["known"] - 1) <= 0.05, medians
