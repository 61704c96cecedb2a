"""Online password guessing: at most SIGN_IN_MAX_FAILURES consecutive failures per account
from clients that never signed in to it, while the owner's browser (its device cookie) is
limited on its own and never kept out by someone else's guesses."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from service.devices import DEVICE_COOKIE, DeviceCookies
from tests.conftest import PASSWORD, Harness, HarnessFactory, assert_problem

# The per-email window is not what most of these tests are about: raised so that 100
# failures fit in seconds. Addresses come from X-Forwarded-For behind a trusted proxy.
FAST_GUESSING: dict[str, Any] = {
    "rate_limit_sign_in_per_account": "10000/minute",
    "rate_limit_sign_in_per_address": "10000/minute",
    "trusted_proxies": "127.0.0.1/32",
}


async def _sign_in(
    h: Harness, email: str, password: str, *, device: str | None = None, ip: str = "192.0.2.1"
) -> httpx.Response:
    headers = {"x-forwarded-for": ip}
    if device is not None:
        headers["cookie"] = f"{DEVICE_COOKIE}={device}"
    async with h.new_client() as browser:  # no cookie but the one given
        return await browser.post(
            "/v1/auth/token", data={"username": email, "password": password}, headers=headers
        )


async def _owner_device(h: Harness, email: str) -> str:
    signed_in = await _sign_in(h, email, PASSWORD, ip="198.51.100.7")
    assert signed_in.status_code == 200, signed_in.text
    device = signed_in.cookies.get(DEVICE_COOKIE)
    assert device
    return device


async def test_a_successful_sign_in_sets_a_strict_http_only_device_cookie(h: Harness) -> None:
    email = await h.signup()
    async with h.new_client() as browser:
        response = await browser.post(
            "/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
    assert response.status_code == 200
    header = response.headers["set-cookie"]
    assert header.startswith(f"{DEVICE_COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "samesite=strict" in header.lower()
    assert "path=/v1/auth" in header.lower()
    assert "secure" not in attributes  # plain HTTP here; see the HSTS test below
    wrong = await _sign_in(h, email, "not the password at all")
    assert "set-cookie" not in wrong.headers


async def test_the_device_cookie_is_secure_when_the_service_is_served_over_tls(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(hsts_seconds=31_536_000)
    email = await h.signup()
    response = await _sign_in(h, email, PASSWORD)
    assert "secure" in response.headers["set-cookie"].lower()


async def test_the_101st_consecutive_failure_from_unknown_clients_is_refused_not_the_owner(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(**FAST_GUESSING)
    email = await h.signup()
    device = await _owner_device(h, email)
    for attempt in range(100):
        wrong = await _sign_in(h, email, f"guess number {attempt}", ip=f"203.0.113.{attempt % 2}")
        assert_problem(wrong, 401, "invalid_credentials")
    # The 101st, even with the right password, from a client without the device cookie.
    refused = await _sign_in(h, email, PASSWORD, ip="203.0.113.9")
    assert_problem(refused, 429, "rate_limited")
    assert 3000 < int(refused.headers["retry-after"]) <= 3600
    # The owner's browser still signs in, and that ends the lock for everyone.
    owner = await _sign_in(h, email, PASSWORD, device=device, ip="198.51.100.7")
    assert owner.status_code == 200, owner.text
    again = await _sign_in(h, email, PASSWORD, ip="203.0.113.9")
    assert again.status_code == 200, again.text


async def test_an_unknown_email_is_refused_after_as_many_failures(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(**FAST_GUESSING, sign_in_max_failures=5)
    known = await h.signup()
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
    answers = {}
    for email in (known, unknown):
        for _ in range(5):
            assert_problem(await _sign_in(h, email, "wrong password 1"), 401, "invalid_credentials")
        refused = await _sign_in(h, email, "wrong password 1")
        answers[email] = (refused.status_code, refused.json()["code"])
    assert answers[known] == answers[unknown] == (429, "rate_limited")


async def test_a_right_password_ends_the_run_of_failures(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(**FAST_GUESSING, sign_in_max_failures=3)
    email = await h.signup()
    for _ in range(2):
        assert (await _sign_in(h, email, "wrong password 1")).status_code == 401
    assert (await _sign_in(h, email, PASSWORD)).status_code == 200
    for _ in range(2):  # consecutive again from zero: not refused yet
        assert (await _sign_in(h, email, "wrong password 1")).status_code == 401
    assert (await _sign_in(h, email, PASSWORD)).status_code == 200


async def test_a_device_cookie_is_bound_to_its_account_and_signed(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(**FAST_GUESSING, sign_in_max_failures=2)
    mallory = await h.signup()
    victim = await h.signup()
    mallorys_device = await _owner_device(h, mallory)
    for email in (victim, mallory):
        for _ in range(2):
            assert (await _sign_in(h, email, "wrong password 1")).status_code == 401
    # Mallory's cookie is no known device for the victim: refused like any unknown client.
    assert_problem(await _sign_in(h, victim, PASSWORD, device=mallorys_device), 429, "rate_limited")
    # A cookie with one character of its signature changed is no known device either.
    signature_at = mallorys_device.index(".") + 3
    swapped = "A" if mallorys_device[signature_at] != "A" else "B"
    forged = mallorys_device[:signature_at] + swapped + mallorys_device[signature_at + 1 :]
    assert_problem(await _sign_in(h, mallory, PASSWORD, device=forged), 429, "rate_limited")
    # The real one is.
    assert (await _sign_in(h, mallory, PASSWORD, device=mallorys_device)).status_code == 200


async def test_a_known_device_has_its_own_failure_limit(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(**FAST_GUESSING, sign_in_max_failures=3)
    email = await h.signup()
    device = await _owner_device(h, email)
    for _ in range(3):
        assert (await _sign_in(h, email, "wrong password 1", device=device)).status_code == 401
    assert_problem(await _sign_in(h, email, PASSWORD, device=device), 429, "rate_limited")


async def test_an_attacker_at_full_speed_never_fails_the_owners_sign_in(
    harness_factory: HarnessFactory,
) -> None:
    """The default limits, with an attacker guessing as fast as it can from two addresses, and
    the owner signing in from a known browser all the while."""
    h = await harness_factory(
        trusted_proxies="127.0.0.1/32",
        rate_limit_sign_in_per_account="10/minute",
        rate_limit_sign_in_per_address="60/minute",
        rate_limit_sign_in_per_device="10/minute",
    )
    email = await h.signup()
    device = await _owner_device(h, email)
    stop = asyncio.Event()
    attacker_answers: list[int] = []

    async def attacker(ip: str) -> None:
        while not stop.is_set():
            attacker_answers.append(
                (await _sign_in(h, email, "guess guess guess", ip=ip)).status_code
            )

    attackers = [asyncio.create_task(attacker(ip)) for ip in ("203.0.113.1", "203.0.113.2")]
    owner_answers = []
    try:
        await asyncio.sleep(0.5)  # the attacker has used up the email's window by now
        for _ in range(8):
            owner = await _sign_in(h, email, PASSWORD, device=device, ip="198.51.100.7")
            owner_answers.append(owner.status_code)
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*attackers)
    assert owner_answers == [200] * 8
    assert 429 in attacker_answers  # the attacker was refused meanwhile


def test_a_device_cookie_has_one_spelling() -> None:
    """The last base64 character of each part also carries unused bits: a cookie spelled
    otherwise (same bytes) is not one this service wrote."""
    cookies = DeviceCookies(b"k" * 32)
    cookie = cookies.issue("ada@example.com")
    assert cookies.device_for(cookie, "ada@example.com") is not None
    assert cookies.device_for(cookie, "eve@example.com") is None
    tail = cookie[-1]
    for other in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        if other != tail:
            assert cookies.device_for(cookie[:-1] + other, "ada@example.com") is None
