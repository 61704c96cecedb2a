"""POST /v1/accounts, POST /v1/auth/token, POST /v1/auth/logout, GET /v1/me."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import PASSWORD, Harness, assert_problem


async def test_create_account_returns_the_account(h: Harness) -> None:
    email = f"Ada.{uuid.uuid4().hex[:8]}@Example.COM"
    response = await h.client.post("/v1/accounts", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "mfa_enabled", "created_at", "sign_in_methods"}
    assert body["sign_in_methods"] == ["password"]
    uuid.UUID(body["id"])
    assert body["email"] == email.lower()
    assert body["mfa_enabled"] is False
    created = datetime.fromisoformat(body["created_at"])
    assert body["created_at"].endswith("Z")
    assert abs(created - datetime.now(UTC)) < timedelta(minutes=1)
    assert PASSWORD not in response.text
    assert "password_hash" not in response.text


async def test_email_taken_is_409_case_insensitively(h: Harness) -> None:
    email = await h.signup()
    response = await h.client.post(
        "/v1/accounts", json={"email": email.upper(), "password": PASSWORD}
    )
    assert_problem(response, 409, "email_taken")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.com", "password": "elevenchars"},
        {"email": "a@example.com"},
        {"password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "admin": True},
        {"email": 42, "password": PASSWORD},
        {"email": "a@example.com", "password": ["x" * 12]},
        {"email": "a@example.com", "password": "abc\x00defghijkl"},
        {"email": "a@example.com", "password": "abc\ud800defghijkl"},
    ],
    ids=[
        "bad-email",
        "short-password",
        "no-password",
        "no-email",
        "unknown-field",
        "email-not-string",
        "password-not-string",
        "nul-in-password",
        "lone-surrogate",
    ],
)
async def test_bad_account_input_is_422(h: Harness, body: dict) -> None:
    # ensure_ascii: a lone surrogate travels as the JSON escape \\ud800, as a client would send it.
    response = await h.client.post(
        "/v1/accounts",
        content=json.dumps(body, ensure_ascii=True),
        headers={"content-type": "application/json"},
    )
    problem = assert_problem(response, 422, "validation_error")
    assert problem["errors"], problem
    # The submitted values are never echoed back.
    assert PASSWORD not in response.text
    assert "elevenchars" not in response.text


async def test_password_of_exactly_twelve_characters_is_accepted(h: Harness) -> None:
    email = f"twelve-{uuid.uuid4().hex[:8]}@example.com"
    response = await h.client.post(
        "/v1/accounts", json={"email": email, "password": "kettle-ocean"}
    )
    assert response.status_code == 201


async def test_sign_in_returns_a_bearer_token(h: Harness) -> None:
    email = await h.signup()
    response = await h.client.post(
        "/v1/auth/token", data={"username": email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == h.services.settings.session_ttl_seconds
    # Prefixed, then the account's tag (22 url-safe chars: which Redis slot), then at least
    # 128 bits of randomness (43 url-safe chars = 256 bits).
    assert re.fullmatch(r"sps_[A-Za-z0-9_-]{22}[A-Za-z0-9_-]{43}", body["access_token"])
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_email_and_wrong_password_get_the_same_answer(h: Harness) -> None:
    email = await h.signup()
    wrong = await h.client.post(
        "/v1/auth/token", data={"username": email, "password": PASSWORD + "!"}
    )
    unknown = await h.client.post(
        "/v1/auth/token", data={"username": "nobody-" + email, "password": PASSWORD}
    )
    assert_problem(wrong, 401, "invalid_credentials")
    assert_problem(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers.keys() - {"x-request-id", "date"} == unknown.headers.keys() - {
        "x-request-id",
        "date",
    }


@pytest.mark.parametrize(
    "form",
    [
        {"username": "a\x00@example.com", "password": PASSWORD},
        {"username": "a@example.com", "password": "x\x00y"},
        {"username": "ä" * 300 + "@example.com", "password": PASSWORD},
    ],
    ids=["nul-email", "nul-password", "long-unicode"],
)
async def test_odd_sign_in_input_is_refused_cleanly(h: Harness, form: dict) -> None:
    response = await h.client.post("/v1/auth/token", data=form)
    assert_problem(response, 401, "invalid_credentials")


async def test_sign_in_form_must_have_both_fields(h: Harness) -> None:
    response = await h.client.post("/v1/auth/token", data={"username": "a@example.com"})
    assert_problem(response, 422, "validation_error")


async def test_me_returns_the_signed_in_account(h: Harness) -> None:
    email, user = await h.user()
    response = await h.client.get("/v1/me", headers=user)
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == email
    assert body["mfa_enabled"] is False
    assert set(body) == {"id", "email", "mfa_enabled", "created_at", "sign_in_methods"}
    assert body["sign_in_methods"] == ["password"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sps_not-a-real-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}],
    ids=["none", "unknown-token", "wrong-scheme"],
)
async def test_me_needs_a_valid_token(h: Harness, headers: dict) -> None:
    response = await h.client.get("/v1/me", headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_ends_the_session_at_once(h: Harness) -> None:
    email = await h.signup()
    token = await h.sign_in(email)
    other = await h.sign_in(email)
    user = {"Authorization": f"Bearer {token}"}
    assert (await h.client.post("/v1/auth/logout", headers=user)).status_code == 204
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
    assert_problem(await h.client.post("/v1/auth/logout", headers=user), 401, "unauthenticated")
    # Only that session ended.
    other_user = {"Authorization": f"Bearer {other}"}
    assert (await h.client.get("/v1/me", headers=other_user)).status_code == 200


async def test_sessions_are_stored_only_as_digests(h: Harness) -> None:
    email = await h.signup()
    token = await h.sign_in(email)
    redis = h.services.redis.client
    keys = [k async for k in redis.scan_iter(match=f"{h.services.redis.keys.prefix}*")]
    assert keys
    for key in keys:
        assert token.encode() not in key
        assert token[4:].encode() not in key


async def test_expired_session_is_refused(harness_factory) -> None:
    h = await harness_factory(session_ttl_seconds=60)
    _email, user = await h.user()
    # Expire it in Redis (a 60 s minimum TTL is the setting's floor; waiting is pointless).
    redis = h.services.redis.client
    async for key in redis.scan_iter(match=f"{h.services.redis.keys.prefix}sess:*"):
        await redis.pexpire(key, 1)
    await asyncio.sleep(0.05)
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
