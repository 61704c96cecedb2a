"""What schemathesis found, pinned down: each was a 5xx or an answer the schema did not list."""

from __future__ import annotations

from tests.conftest import PASSWORD, Harness


async def test_sign_in_with_nul_in_the_email_is_a_plain_401(h: Harness) -> None:
    response = await h.client.post(
        "/v1/auth/token", data={"username": "a\x00b@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


async def test_sign_in_with_an_overlong_password_is_a_plain_401(h: Harness) -> None:
    email = await h.signup()
    response = await h.client.post(
        "/v1/auth/token", data={"username": email, "password": "x" * 5000}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    # Multi-byte characters: 1025 of them are well past passlib's 4096-byte ceiling.
    response = await h.client.post(
        "/v1/auth/token", data={"username": email, "password": "€" * 1500}
    )
    assert response.status_code == 401


async def test_verification_with_nul_in_the_email_is_not_valid(h: Harness) -> None:
    _, agent = await h.agent()
    body = await h.verify(agent, "a\x00b@example.com", "000000")
    assert body == {"valid": False, "account_id": None, "verified_at": None}


async def test_body_that_is_not_utf8_is_a_400_problem(h: Harness) -> None:
    _, agent = await h.agent()
    response = await h.client.post(
        "/v1/agent/verifications",
        headers={**agent, "content-type": "application/json"},
        content=b"\x80\x81 not utf-8",
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "bad_request"


async def test_405_lists_every_method_of_the_path(h: Harness) -> None:
    response = await h.client.request("PATCH", "/v1/me/support-pin")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert {"GET", "POST", "DELETE"} <= allowed
