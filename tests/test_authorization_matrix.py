"""Every operation of openapi.yaml, for every kind of caller → the expected status.

The operations are read from openapi.yaml, so a new route without a row here fails
`test_every_operation_has_a_row`. To add a row: one `Row(...)` in ROWS with the method, the
path, who may call it (`public`, `customers`, `verifiers`, `staff_with_role`, `any_staff`)
and, if it takes them, a body and `make` (fresh things for each call to act on: the route
changes them, or they are single use).

The callers: nobody; two customers; an API key; staff of each role; a staff member signed in
and then disabled by an admin; and credentials that are dead (a revoked key, a logged-out or
expired customer session, garbage). A credential that is not good is 401 everywhere; a good
one without the right (a customer at the agent route, an API key or a lower role at an
administrative route) is 403 `forbidden`. User routes know customer sessions only: a staff
token or an API key there is no credential at all (401), and so is anything but a staff
session at the staff routes.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

import httpx
import pytest
import redis.asyncio
import yaml
from starlette.types import Receive, Scope, Send

from api.app import create_app
from service.settings import Settings
from service.staff import ROLES, Role, has_role
from tests.conftest import GENEROUS_RATE_LIMITS, PASSWORD, Harness
from tests.live import ROOT
from tests.staffing import StaffMember, code_at, staff_member
from tests.stores import TestStores

STAFF: tuple[Role, ...] = ROLES  # agent, supervisor, admin: the callers are named by role
CUSTOMERS = ("customer", "another_customer")
CALLERS = (
    "anonymous",
    *CUSTOMERS,
    "api_key",
    *STAFF,
    "disabled_staff",
    "revoked_key",
    "logged_out_token",
    "expired_token",
    "malformed_token",
)

Expected = dict[str, int]


def _answers(status: int, allowed: Iterable[str], forbidden: Iterable[str] = ()) -> Expected:
    return {
        **dict.fromkeys(CALLERS, 401),
        **dict.fromkeys(forbidden, 403),
        **dict.fromkeys(allowed, status),
    }


def public(status: int) -> Expected:
    """Anyone gets `status`; credentials are neither needed nor looked at."""
    return dict.fromkeys(CALLERS, status)


def customers(status: int) -> Expected:
    """A signed-in customer (any: the route acts on the caller's own account). Staff tokens
    and API keys are not customer sessions: 401, as for no token."""
    return _answers(status, CUSTOMERS)


def verifiers(status: int) -> Expected:
    """An API key or any staff member; a customer is known and refused (403)."""
    return _answers(status, ("api_key", *STAFF), forbidden=CUSTOMERS)


def staff_with_role(needed: Role, status: int) -> Expected:
    """Staff with `needed` or a higher role; lower roles, API keys and customers 403."""
    allowed = [role for role in STAFF if has_role(role, needed)]
    lower = [role for role in STAFF if not has_role(role, needed)]
    return _answers(status, allowed, forbidden=(*CUSTOMERS, "api_key", *lower))


def any_staff(status: int) -> Expected:
    """A staff session of any role; anything else is not one (401)."""
    return _answers(status, STAFF)


@dataclass(frozen=True)
class Context:
    email: str  # the "customer" account (verified against, unlocked, signed in as)
    staff_email: str  # a set-up staff member (the "agent" caller), for the staff sign-in
    made: dict[str, str] = field(default_factory=dict)  # the row's `make`, for this call


Body = Callable[[Context], dict[str, Any]]
Make = Callable[[Harness], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # `{name}` parts come from `make`
    expected: Expected
    json: Body | None = None
    form: Body | None = None
    make: Make | None = None
    # A live event stream: it stays open until the caller's session ends (then it closes).
    stream: bool = False

    @property
    def operation(self) -> str:
        return f"{self.method} {self.path}"


def _new_account(_: Context) -> dict[str, Any]:
    return {"email": f"matrix-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}


async def _staff_target(h: Harness) -> dict[str, str]:
    """A staff member of its own for each call of a route that changes one."""
    added = await h.services.staff.add(
        f"target-{uuid.uuid4().hex[:10]}@corp.example", "Target", "agent", actor="test"
    )
    return {"staff_id": str(added.staff.id)}


async def _key_target(h: Harness) -> dict[str, str]:
    record, _ = await h.services.agents.create(f"target-{uuid.uuid4().hex[:8]}")
    return {"key_id": str(record.id)}


async def _setup_link(h: Harness) -> dict[str, str]:
    added = await h.services.staff.add(
        f"setup-{uuid.uuid4().hex[:10]}@corp.example", "Setup", "agent", actor="test"
    )
    return {"token": added.setup_token}


async def _started_setup(h: Harness) -> dict[str, str]:
    made = await _setup_link(h)
    enrollment = await h.services.staff.start_setup(made["token"], PASSWORD)
    return {**made, "code": code_at(enrollment.secret)}


async def _confirmation_of_another(h: Harness) -> dict[str, str]:
    """A confirmation asked for by an API key of its own: no caller here made it."""
    _, key = await h.services.agents.create(f"asker-{uuid.uuid4().hex[:8]}")
    email, _ = await h.user()
    asked = await h.client.post(
        "/v1/agent/confirmations", headers=bearer(key), json={"email": email}
    )
    return {"confirmation_id": asked.json()["id"]}


async def _made_up_id(_: Harness) -> dict[str, str]:
    made_up = str(uuid.uuid4())
    return {"confirmation_id": "made-up-id", "notice_id": made_up, "passkey_id": made_up}


def _verification(ctx: Context) -> dict[str, Any]:
    return {"email": ctx.email, "pin": "000000"}


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
    Row("POST", "/v1/auth/logout", customers(204)),
    # Customers' sign-in through an OpenID provider: not configured here (tests/test_oidc.py).
    Row("GET", "/v1/auth/methods", public(200)),
    Row("GET", "/v1/auth/oidc/login", public(404)),
    Row("GET", "/v1/auth/oidc/callback", public(404)),
    Row("POST", "/v1/auth/oidc/token", public(404), json=lambda ctx: {"code": "x" * 43}),
    Row("GET", "/v1/me", customers(200)),
    Row("POST", "/v1/me/support-pin", customers(201)),
    Row("GET", "/v1/me/support-pin", customers(200)),
    Row("DELETE", "/v1/me/support-pin", customers(204)),
    Row("GET", "/v1/me/support-pin/events", customers(200)),
    Row("POST", "/v1/agent/verifications", verifiers(200), json=_verification),
    # Two-factor sign-in (the customers here have not turned it on, hence the 409s).
    Row(
        "POST",
        "/v1/auth/token/mfa",
        public(401),  # a made-up mfa_token is refused whoever sends it
        json=lambda ctx: {"mfa_token": "spm_made-up", "code": "000000"},
    ),
    Row("GET", "/v1/me/mfa", customers(200)),
    Row("POST", "/v1/me/mfa/totp", customers(201)),
    Row("POST", "/v1/me/mfa/totp/confirm", customers(409), json=lambda ctx: {"code": "000000"}),
    Row("DELETE", "/v1/me/mfa/totp", customers(409), json=lambda ctx: {"code": "000000"}),
    Row("POST", "/v1/me/mfa/recovery-codes", customers(409), json=lambda ctx: {"code": "000000"}),
    # Staff: set-up and sign-in are public (the link's secret or the password is the
    # credential); each call gets a set-up link of its own.
    Row(
        "POST",
        "/v1/staff/setup",
        public(200),
        json=lambda ctx: {"token": ctx.made["token"], "password": PASSWORD},
        make=_setup_link,
    ),
    Row(
        "POST",
        "/v1/staff/setup/confirm",
        public(204),
        json=lambda ctx: {"token": ctx.made["token"], "code": ctx.made["code"]},
        make=_started_setup,
    ),
    Row("GET", "/v1/staff/auth/methods", public(200)),
    Row(
        "POST",
        "/v1/staff/auth/token",
        public(401),  # the right password: always 401 `mfa_required`, for whoever sends it
        form=lambda ctx: {"username": ctx.staff_email, "password": PASSWORD},
    ),
    Row(
        "POST",
        "/v1/staff/auth/token/mfa",
        public(401),
        json=lambda ctx: {"mfa_token": "ssm_made-up", "code": "000000"},
    ),
    Row("POST", "/v1/staff/auth/logout", any_staff(204)),
    Row("GET", "/v1/staff/me", any_staff(200)),
    # Staff single sign-on: not configured here (tests/test_staff_sso.py).
    Row("GET", "/v1/staff/auth/oidc/login", public(404)),
    Row("GET", "/v1/staff/auth/oidc/callback", public(404)),
    Row("POST", "/v1/staff/auth/oidc/token", public(404), json=lambda ctx: {"code": "x" * 43}),
    # Administration.
    Row("GET", "/v1/admin/staff", staff_with_role("admin", 200)),
    Row(
        "POST",
        "/v1/admin/staff",
        staff_with_role("admin", 201),
        json=lambda ctx: {
            "email": f"added-{uuid.uuid4().hex[:10]}@corp.example",
            "name": "Added",
            "role": "agent",
        },
    ),
    Row(
        "PATCH",
        "/v1/admin/staff/{staff_id}",
        staff_with_role("admin", 200),
        json=lambda ctx: {"role": "supervisor"},
        make=_staff_target,
    ),
    Row(
        "POST",
        "/v1/admin/staff/{staff_id}/setup-link",
        staff_with_role("admin", 201),
        make=_staff_target,
    ),
    Row("GET", "/v1/admin/api-keys", staff_with_role("admin", 200)),
    Row(
        "POST",
        "/v1/admin/api-keys",
        staff_with_role("admin", 201),
        json=lambda ctx: {"name": f"matrix-{uuid.uuid4().hex[:8]}"},
    ),
    Row(
        "DELETE",
        "/v1/admin/api-keys/{key_id}",
        staff_with_role("admin", 204),
        make=_key_target,
    ),
    Row(
        "POST",
        "/v1/admin/accounts/unlock",
        staff_with_role("admin", 204),
        json=lambda ctx: {"email": ctx.email},
    ),
    Row("GET", "/v1/admin/audit", staff_with_role("supervisor", 200)),
    Row("GET", "/v1/admin/notices", staff_with_role("admin", 200)),
    Row(
        "POST",
        "/v1/admin/notices/{notice_id}/retry",
        staff_with_role("admin", 404),  # no such failed notice: the role is checked first
        make=_made_up_id,
    ),
    # Against fake support calls.
    Row("POST", "/v1/agent/confirmations", verifiers(201), json=lambda ctx: {"email": ctx.email}),
    Row(
        "GET",
        "/v1/agent/confirmations/{confirmation_id}",
        verifiers(404),  # another's request: the role is checked first, then whose it is
        make=_confirmation_of_another,
    ),
    Row(
        "GET",
        "/v1/agent/confirmations/{confirmation_id}/stream",
        verifiers(404),
        make=_confirmation_of_another,
    ),
    Row("GET", "/v1/me/confirmations", customers(200)),
    Row(
        "POST",
        "/v1/me/confirmations/{confirmation_id}",
        customers(404),
        json=lambda ctx: {"choice": "00"},
        make=_made_up_id,
    ),
    Row("POST", "/v1/me/confirmations/{confirmation_id}/deny", customers(404), make=_made_up_id),
    Row("GET", "/v1/me/support-contact", customers(200)),
    Row("GET", "/v1/me/stream", customers(200), stream=True),
    Row("POST", "/v1/me/support-lock", customers(200)),
    Row("POST", "/v1/report", public(400), json=lambda ctx: {"token": "rpt_made-up"}),
    # Self-service (the wrong password and the made-up tokens keep every account as it is).
    Row(
        "POST",
        "/v1/me/password",
        customers(400),
        json=lambda ctx: {"current_password": "not-it", "new_password": PASSWORD + " new"},
    ),
    Row("POST", "/v1/auth/password-reset", public(202), json=lambda ctx: {"email": ctx.email}),
    Row(
        "POST",
        "/v1/auth/password-reset/confirm",
        public(400),
        json=lambda ctx: {"token": "prt_made-up", "new_password": PASSWORD + " new"},
    ),
    Row("DELETE", "/v1/me", customers(400), json=lambda ctx: {"password": "not-it"}),
    Row("POST", "/v1/me/passkeys/options", customers(200)),
    Row(
        "POST",
        "/v1/me/passkeys",
        customers(400),  # no passkey was being added: refused whatever the credential
        json=lambda ctx: {"name": "Phone", "credential": {}},
    ),
    Row("GET", "/v1/me/passkeys", customers(200)),
    Row("DELETE", "/v1/me/passkeys/{passkey_id}", customers(404), make=_made_up_id),
    Row("POST", "/v1/auth/passkey/options", public(200)),
    Row("POST", "/v1/auth/passkey", public(401), json=lambda ctx: {"credential": {}}),
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


# -- the callers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """What every row shares: one app, its staff, and the credentials that are dead."""

    h: Harness
    staff: dict[Role, StaffMember]
    fixed: dict[str, dict[str, str]]  # headers of the callers that no row can change


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def world(db_url: str, stores: TestStores) -> AsyncIterator[World]:
    """One app for the module (as conftest's `harness_factory` builds it, with a Redis key
    prefix of its own, deleted afterwards): staff are set up once, not per row."""
    prefix = f"test:{secrets.token_hex(6)}:"
    settings = Settings(
        environment="test",
        database_url=db_url,
        redis_url=stores.redis_url,
        redis_cluster=stores.redis_cluster,
        redis_key_prefix=prefix,
        secret_key="test-secret-key-" + "x" * 32,
        **GENEROUS_RATE_LIMITS,
    )
    app = create_app(settings)
    lifespan: AbstractAsyncContextManager[Any] = app.router.lifespan_context(app)
    state = await lifespan.__aenter__()
    assert state is not None

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=served)
    client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    h = Harness(app, client, state["services"], transport)
    try:
        yield await _world(h)
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)
        for url in dict.fromkeys([stores.redis_url, stores.single_node_redis]):
            keys = redis.asyncio.Redis.from_url(url)
            try:
                async for key in keys.scan_iter(match=f"{prefix}*", count=1000):
                    await keys.unlink(key)
            finally:
                await keys.aclose()


async def _world(h: Harness) -> World:
    staff = {role: await staff_member(h, role) for role in STAFF}
    # Signed in (and working), then disabled by an admin: an admin, so that a refusal for
    # want of a role could not pass for the refusal of a dead session.
    disabled = await staff_member(h, "admin")
    assert (await h.client.get("/v1/staff/me", headers=disabled.headers)).status_code == 200
    answer = await h.client.patch(
        f"/v1/admin/staff/{disabled.id}", headers=staff["admin"].headers, json={"disabled": True}
    )
    assert answer.status_code == 200, answer.text

    _, api_key = await h.agent()
    revoked_name, revoked_key = await h.agent()
    await h.services.agents.revoke(revoked_name)

    email = await h.signup()
    logged_out = await h.sign_in(email)
    response = await h.client.post("/v1/auth/logout", headers=bearer(logged_out))
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

    fixed = {
        "anonymous": {},
        "api_key": api_key,
        "disabled_staff": disabled.headers,
        "revoked_key": revoked_key,
        "logged_out_token": bearer(logged_out),
        "expired_token": bearer(expired),
        "malformed_token": bearer("not-a-token"),
    }
    return World(h, staff, fixed)


async def _callers(world: World) -> tuple[Context, dict[str, dict[str, str]], dict[str, str]]:
    """Headers for each kind of caller, and what the first customer's answers may show.

    Customers and staff sessions are new for each row: rows sign them out, or start a second
    factor, which must not carry over to the next row. (A staff session is opened directly,
    as single sign-on does: a code of the authenticator works once per 30 s step.)"""
    h = world.h
    email, customer = await h.user()
    _, another_customer = await h.user()
    staff: dict[str, dict[str, str]] = {
        role: bearer(await h.services.staff.open_session(UUID(member.id)))
        for role, member in world.staff.items()
    }
    headers: dict[str, dict[str, str]] = {
        **world.fixed,
        "customer": customer,
        "another_customer": another_customer,
        **staff,
    }
    assert set(headers) == set(CALLERS)
    me = (await h.client.get("/v1/me", headers=customer)).json()
    return Context(email, world.staff["agent"].email), headers, {"email": email, "id": me["id"]}


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.operation)
async def test_authorization_matrix(world: World, row: Row) -> None:
    h = world.h
    ctx, callers, customer = await _callers(world)
    await h.issue_pin(callers["customer"])  # state for the PIN routes to act on
    got: dict[str, int] = {}
    for caller in CALLERS:
        call = replace(ctx, made=await row.make(h)) if row.make else ctx
        request = h.client.request(
            row.method,
            row.path.format(**call.made),
            headers=callers[caller],
            json=row.json(call) if row.json else None,
            data=row.form(call) if row.form else None,
        )
        if row.stream and row.expected[caller] == 200:
            # Open, then end the session: the stream closes and its answer completes.
            pending = asyncio.ensure_future(request)
            await asyncio.sleep(0.3)
            await h.client.post("/v1/auth/logout", headers=callers[caller])
            response = await asyncio.wait_for(pending, 10)
        else:
            response = await request
        got[caller] = response.status_code
        if caller == "another_customer":
            # Acting on one's own account only: nothing of the first customer shows through.
            assert customer["email"] not in response.text
            assert customer["id"] not in response.text
        if response.status_code == 401:
            assert response.json()["code"] in (
                "unauthenticated",
                "invalid_credentials",
                "invalid_code",
                "mfa_required",
            )
        if response.status_code == 403:
            assert response.json()["code"] == "forbidden"
    assert got == row.expected


async def test_refused_callers_change_nothing(world: World) -> None:
    """A 403 or 401 at an administrative route that changes things leaves them as they were."""
    h = world.h
    _, callers, _ = await _callers(world)
    for caller in CALLERS:
        if caller == "admin":
            continue
        target = await _staff_target(h)
        key = await _key_target(h)
        patched = await h.client.patch(
            f"/v1/admin/staff/{target['staff_id']}",
            headers=callers[caller],
            json={"role": "admin"},
        )
        deleted = await h.client.delete(
            f"/v1/admin/api-keys/{key['key_id']}", headers=callers[caller]
        )
        assert patched.status_code in (401, 403), caller
        assert deleted.status_code in (401, 403), caller
        after = await h.services.staff.get(UUID(target["staff_id"]))
        assert after is not None
        assert after.role == "agent", caller
        listed = {record.id: record for record in await h.services.agents.list()}
        assert listed[UUID(key["key_id"])].revoked_at is None, caller
