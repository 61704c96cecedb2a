"""Bad input of every kind gets a 4xx problem document, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Harness


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{", "application/json"),
        (b"", "application/json"),
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b'{"email": "a@example.com", "pin": "123456"', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"email=a@example.com&pin=123456", "application/x-www-form-urlencoded"),
        (b"<xml/>", "text/xml"),
        (json.dumps({"email": "\u202e\u0000", "pin": "123456"}).encode(), "application/json"),
        (json.dumps({"email": "a@example.com", "pin": "١٢٣٤٥٦"}).encode(), "application/json"),
        (json.dumps({"email": "a" * 10_000, "pin": "123456"}).encode(), "application/json"),
        (b'{"email": 1e999, "pin": "123456"}', "application/json"),
    ],
)
async def test_malformed_verification_bodies_get_4xx_problems(
    h: Harness, content: bytes, content_type: str
) -> None:
    _, agent = await h.agent()
    response = await h.client.post(
        "/v1/agent/verifications",
        headers={**agent, "content-type": content_type},
        content=content,
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == response.status_code


async def test_duplicate_keys_take_one_value_and_still_answer(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    # Python's JSON keeps the last duplicate: the right PIN last verifies.
    body = f'{{"email": "{email}", "pin": "000000", "pin": "{pin}"}}'.encode()
    response = await h.client.post(
        "/v1/agent/verifications",
        headers={**agent, "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 200


async def test_huge_body_is_413_problem(h: Harness) -> None:
    _, agent = await h.agent()
    big = json.dumps({"email": "a@example.com", "pin": "1" * 100_000}).encode()
    response = await h.client.post(
        "/v1/agent/verifications",
        headers={**agent, "content-type": "application/json"},
        content=big,
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"


async def test_huge_chunked_body_is_413_problem(h: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 4096

    response = await h.client.post(
        "/v1/accounts", headers={"content-type": "application/json"}, content=chunks()
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


async def test_unknown_path_and_method_are_problems(h: Harness) -> None:
    missing = await h.client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong_method = await h.client.put("/v1/me/support-pin")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


async def test_odd_headers_do_not_break_anything(h: Harness) -> None:
    odd: list[bytes] = [
        b"Bearer",
        b"Bearer ",
        b"bearer sps_x y z",
        b"Bearer " + b"A" * 5000,
        "Bearer Ünïcode".encode(),
    ]
    for value in odd:
        response = await h.client.get("/v1/me", headers={b"Authorization": value})
        assert response.status_code == 401
    weird_id = await h.client.get("/healthz", headers={"X-Request-ID": "a b\tc" * 30})
    assert weird_id.status_code == 200
    assert weird_id.headers["x-request-id"] != "a b\tc" * 30  # malformed ids are replaced
    kept = await h.client.get("/healthz", headers={"X-Request-ID": "trace-123_abc.def"})
    assert kept.headers["x-request-id"] == "trace-123_abc.def"
