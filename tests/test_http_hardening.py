"""Security headers on every answer, HSTS and CORS when configured, and the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from service.settings import Settings
from tests.conftest import PASSWORD, Harness, HarnessFactory

REQUIRED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_hardened(response: httpx.Response) -> None:
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_security_headers_on_every_kind_of_answer(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(rate_limit_pin_issue_per_account="1/minute")
    email, user = await h.user()
    answers = [
        await h.client.get("/healthz"),
        await h.client.get("/v1/me", headers=user),  # 200
        await h.client.post("/v1/me/support-pin", headers=user),  # 201 with a secret
        await h.client.post("/v1/me/support-pin", headers=user),  # 429
        await h.client.delete("/v1/me/support-pin", headers=user),  # 204
        await h.client.get("/v1/me"),  # 401
        await h.client.get("/nowhere"),  # 404
        await h.client.patch("/v1/me"),  # 405
        await h.client.post("/v1/accounts", json={"email": "x"}),  # 422
        await h.client.post(
            "/v1/accounts",
            content=b"x" * (64 * 1024 + 1),
            headers={"content-type": "application/json"},
        ),  # 413
        await h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD}),
    ]
    assert [a.status_code for a in answers] == [
        200, 200, 201, 429, 204, 401, 404, 405, 422, 413, 200,
    ]  # fmt: skip
    for answer in answers:
        assert_hardened(answer)
        assert "strict-transport-security" not in answer.headers  # HSTS_SECONDS=0: off
        assert "access-control-allow-origin" not in answer.headers


async def test_hsts_when_configured(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(hsts_seconds=31_536_000)
    for response in (await h.client.get("/healthz"), await h.client.get("/v1/me")):
        assert response.headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains"
        )


async def test_cors_allow_list(harness_factory: HarnessFactory) -> None:
    allowed = "https://support.example.com"
    h = await harness_factory(cors_allow_origins=f"{allowed}, http://localhost:3000")
    _, user = await h.user()

    ok = await h.client.get("/v1/me", headers={**user, "Origin": allowed})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-credentials" not in ok.headers  # bearer tokens, no cookies
    assert_hardened(ok)

    other = await h.client.get("/v1/me", headers={**user, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers

    preflight = await h.client.options(
        "/v1/me/support-pin",
        headers={
            "Origin": allowed,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refused = await h.client.options(
        "/v1/me/support-pin",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "cors_refused"
    assert "access-control-allow-origin" not in refused.headers
    assert_hardened(refused)

    # A rate-limited answer tells a browser client how long to wait.
    assert "Retry-After" in ok.headers.get("access-control-expose-headers", "")


def test_cors_origins_must_be_exact() -> None:
    for bad in ("*", "https://example.com/", "example.com", "https://*.example.com"):
        with pytest.raises(ValueError, match="CORS origin"):
            Settings(cors_allow_origins=bad)


async def test_body_limit_with_content_length(h: Harness) -> None:
    body = b'{"email": "a@example.com", "password": "' + b"x" * (64 * 1024) + b'"}'
    response = await h.client.post(
        "/v1/accounts", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    assert_hardened(response)


async def test_body_limit_without_content_length(h: Harness) -> None:
    """A chunked upload that never declares its size is cut off at the limit too."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = await h.client.post(
        "/v1/accounts", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_body_at_the_limit_is_read(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(max_body_bytes=2048)
    body = b'{"email": "not-an-email", "password": "' + b"x" * 1900 + b'"}'
    assert len(body) <= 2048
    response = await h.client.post(
        "/v1/accounts", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422  # parsed and validated, not refused for its size
