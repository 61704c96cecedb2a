"""What schemathesis found, pinned down: each was a 5xx or an answer the schema did not list."""

from __future__ import annotations

from service.passwords import PasswordHasher
from tests.conftest import PASSWORD, Harness


async def test_sign_in_with_nul_in_the_email_is_a_plain_401(h: Harness) -> None:
    response = await h.client.post(
        "/v1/auth/token", data={"username": "a\x00b@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


async def test_sign_in_with_an_overlong_password_is_a_4xx(h: Harness) -> None:
    email = await h.signup()
    response = await h.client.post(
        "/v1/auth/token", data={"username": email, "password": "x" * 5000}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_hasher_refuses_overlong_passwords_without_raising() -> None:
    """Behind the form's bound, too: passlib raises past 4096 bytes (it was a 500)."""
    hasher = PasswordHasher(concurrency=1)
    stored = await hasher.hash(PASSWORD)
    for overlong in ("x" * 5000, "€" * 1500):
        assert await hasher.verify(overlong, stored) is False
        assert await hasher.verify(overlong, None) is False
    assert await hasher.verify(PASSWORD, stored) is True


async def test_sign_in_with_empty_fields_is_a_422(h: Harness) -> None:
    response = await h.client.post("/v1/auth/token", data={"username": "", "password": ""})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_verification_with_nul_in_the_email_is_refused(h: Harness) -> None:
    _, agent = await h.agent()
    response = await h.client.post(
        "/v1/agent/verifications",
        headers=agent,
        json={"email": "a\x00b@example.com", "pin": "000000"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


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
