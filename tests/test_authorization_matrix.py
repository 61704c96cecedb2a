"""Every operation of openapi.yaml, for every kind of caller → the expected status.

The operations are read from openapi.yaml, so a new route without a row here fails
`test_every_operation_has_a_row`. To add a row: one `Row(...)` in ROWS with the method, the
path, who may call it (`public`, `user_only`, `agent_only`) and, if it takes one, a body.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from tests.conftest import PASSWORD, Harness, HarnessFactory
from tests.live import ROOT

CALLERS = (
    "anonymous",
    "user",
    "another_user",
    "agent",
    "revoked_agent",
    "logged_out_token",
    "expired_token",
    "malformed_token",
)

Expected = dict[str, int]


def public(status: int) -> Expected:
    """Anyone gets `status`; credentials are neither needed nor looked at."""
    return dict.fromkeys(CALLERS, status)


def user_only(status: int) -> Expected:
    """A signed-in user (any user: the route acts on the caller's own account)."""
    return {**dict.fromkeys(CALLERS, 401), "user": status, "another_user": status}


def agent_only(status: int) -> Expected:
    """An active agent key; a user's token is refused like no token."""
    return {**dict.fromkeys(CALLERS, 401), "agent": status}


@dataclass(frozen=True)
class Context:
    email: str  # the "user" account, which the agent verifies against
    form: dict[str, str] = field(default_factory=dict)


Body = Callable[[Context], dict[str, Any]]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expected: Expected
    json: Body | None = None
    form: Body | None = None

    @property
    def operation(self) -> str:
        return f"{self.method} {self.path}"


def _new_account(_: Context) -> dict[str, Any]:
    return {"email": f"matrix-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}


ROWS: tuple[Row, ...] = (
    Row("GET", "/healthz", public(200)),
    Row("GET", "/readyz", public(200)),
    Row("POST", "/v1/accounts", public(201), json=_new_account),
    Row(
        "POST",
        "/v1/auth/token",
        public(200),
        form=lambda ctx: {"username": ctx.email, "password": PASSWORD},
    ),
    Row("POST", "/v1/auth/logout", user_only(204)),
    # Sign-in through an OpenID provider: not configured here (tests/test_oidc.py has it).
    Row("GET", "/v1/auth/methods", public(200)),
    Row("GET", "/v1/auth/oidc/login", public(404)),
    Row("GET", "/v1/auth/oidc/callback", public(404)),
    Row("POST", "/v1/auth/oidc/token", public(404), json=lambda ctx: {"code": "x" * 43}),
    Row("GET", "/v1/me", user_only(200)),
    Row("POST", "/v1/me/support-pin", user_only(201)),
    Row("GET", "/v1/me/support-pin", user_only(200)),
    Row("DELETE", "/v1/me/support-pin", user_only(204)),
    Row("GET", "/v1/me/support-pin/events", user_only(200)),
    Row(
        "POST",
        "/v1/agent/verifications",
        agent_only(200),
        json=lambda ctx: {"email": ctx.email, "pin": "000000"},
    ),
    # Two-factor sign-in (the users here have not turned it on, hence the 409s).
    Row(
        "POST",
        "/v1/auth/token/mfa",
        public(401),  # a made-up mfa_token is refused whoever sends it
        json=lambda ctx: {"mfa_token": "spm_made-up", "code": "000000"},
    ),
    Row("GET", "/v1/me/mfa", user_only(200)),
    Row("POST", "/v1/me/mfa/totp", user_only(201)),
    Row("POST", "/v1/me/mfa/totp/confirm", user_only(409), json=lambda ctx: {"code": "000000"}),
    Row("DELETE", "/v1/me/mfa/totp", user_only(409), json=lambda ctx: {"code": "000000"}),
    Row("POST", "/v1/me/mfa/recovery-codes", user_only(409), json=lambda ctx: {"code": "000000"}),
)


def spec_operations() -> set[str]:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in methods
    }


def test_every_operation_has_a_row() -> None:
    rows = [row.operation for row in ROWS]
    assert len(rows) == len(set(rows)), "one row per operation"
    assert spec_operations() - set(rows) == set(), "operations in openapi.yaml without a row"
    assert set(rows) - spec_operations() == set(), "rows for operations not in openapi.yaml"


def test_every_row_names_every_caller() -> None:
    for row in ROWS:
        assert set(row.expected) == set(CALLERS), row.operation


async def _callers(h: Harness) -> tuple[Context, dict[str, dict[str, str]], dict[str, str]]:
    """Headers for each kind of caller, and the secrets of the two live users."""
    email, user = await h.user()
    other_email, another_user = await h.user()
    _, agent = await h.agent()
    revoked_name, revoked_agent = await h.agent()
    await h.services.agents.revoke(revoked_name)

    logged_out = await h.sign_in(email)
    response = await h.client.post(
        "/v1/auth/logout", headers={"Authorization": f"Bearer {logged_out}"}
    )
    assert response.status_code == 204

    expired = await h.sign_in(email)
    # A session whose Redis key has run out (SESSION_TTL_SECONDS is at least 60 s).
    claim = h.services.sessions.claim(expired)
    assert claim is not None
    key = claim.redis_key
    assert await h.services.redis.client.pexpire(key, 1)
    for _ in range(200):  # Redis expires it within milliseconds; bounded all the same
        if not await h.services.redis.client.exists(key):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the session key did not expire")

    headers = {
        "anonymous": {},
        "user": user,
        "another_user": another_user,
        "agent": agent,
        "revoked_agent": revoked_agent,
        "logged_out_token": {"Authorization": f"Bearer {logged_out}"},
        "expired_token": {"Authorization": f"Bearer {expired}"},
        "malformed_token": {"Authorization": "Bearer not-a-token"},
    }
    me = (await h.client.get("/v1/me", headers=user)).json()
    return Context(email), headers, {"email": email, "id": me["id"], "other": other_email}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.operation)
async def test_authorization_matrix(harness_factory: HarnessFactory, row: Row) -> None:
    h = await harness_factory()
    ctx, callers, user = await _callers(h)
    await h.issue_pin(callers["user"])  # state for the PIN routes to act on
    got: dict[str, int] = {}
    for caller in CALLERS:
        response = await h.client.request(
            row.method,
            row.path,
            headers=callers[caller],
            json=row.json(ctx) if row.json else None,
            data=row.form(ctx) if row.form else None,
        )
        got[caller] = response.status_code
        if caller == "another_user":
            # Acting on one's own account only: nothing of the first user shows through.
            assert user["email"] not in response.text
            assert user["id"] not in response.text
        if response.status_code == 401:
            assert response.json()["code"] in (
                "unauthenticated",
                "invalid_credentials",
                "invalid_code",
            )
    assert got == row.expected
