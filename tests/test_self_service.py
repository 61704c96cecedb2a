"""Customers manage their own account: password change and reset (through a real SMTP
server), deletion, on real PostgreSQL and Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import PASSWORD, Harness, HarnessFactory, assert_problem
from tests.mailbox import Inbox, eventually
from tests.staffing import staff_member

NEW_PASSWORD = "a brand new passphrase for tests"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def mailing(
    smtp: tuple[Inbox, int],  # first: stopped after the service, with no delivery under way
    harness_factory: HarnessFactory,
) -> tuple[Harness, Inbox]:
    inbox, port = smtp
    h = await harness_factory(
        smtp_url=f"smtp://127.0.0.1:{port}", public_url="https://support.company.example"
    )
    return h, inbox


def link_in(inbox: Inbox, address: str, nth: int = 0) -> str:
    messages = [m for m in inbox.to(address) if m["Subject"] == "Reset your password"]
    plain = messages[nth].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(r"/reset/confirm#token=(prt_[A-Za-z0-9_-]+)", plain)
    assert found is not None, plain
    return found.group(1)


async def reset_emails(inbox: Inbox, address: str, count: int) -> None:
    await eventually(
        lambda: (
            len([m for m in inbox.to(address) if m["Subject"] == "Reset your password"]) >= count
        )
    )


# -- password change ------------------------------------------------------------------------


async def test_a_password_change_ends_every_other_session(h: Harness) -> None:
    email, user = await h.user()
    other = bearer(await h.sign_in(email))
    changed = await h.client.post(
        "/v1/me/password",
        headers=user,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    assert (await h.client.get("/v1/me", headers=user)).status_code == 200  # this one stays
    assert_problem(await h.client.get("/v1/me", headers=other), 401, "unauthenticated")
    assert await h.sign_in(email, NEW_PASSWORD)
    refused = await h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert_problem(refused, 401, "invalid_credentials")
    assert (await h.events(user))[0]["type"] == "password_changed"


async def test_a_wrong_current_password_is_400_and_counted(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(rate_limit_sign_in_per_account="2/minute")
    _, user = await h.user()
    body = {"current_password": "not my password", "new_password": NEW_PASSWORD}
    wrong = await h.client.post("/v1/me/password", headers=user, json=body)
    problem = assert_problem(wrong, 400, "invalid_credentials")
    assert problem["errors"][0]["loc"] == ["body", "current_password"]
    # Counted like a sign-in: the account's sign-in limit now refuses.
    await h.client.post("/v1/me/password", headers=user, json=body)
    limited = await h.client.post("/v1/me/password", headers=user, json=body)
    assert_problem(limited, 429, "rate_limited")


async def test_a_refused_new_password_is_422(h: Harness) -> None:
    _, user = await h.user()
    refused = await h.client.post(
        "/v1/me/password",
        headers=user,
        json={"current_password": PASSWORD, "new_password": "password1234"},
    )
    assert_problem(refused, 422, "password_refused")


# -- password reset -------------------------------------------------------------------------


async def test_a_reset_link_sets_a_new_password_once(mailing: tuple[Harness, Inbox]) -> None:
    h, inbox = mailing
    email, user = await h.user()
    pin = await h.issue_pin(user)
    asked = await h.client.post("/v1/auth/password-reset", json={"email": email})
    assert asked.status_code == 202
    await reset_emails(inbox, email, 1)
    token = link_in(inbox, email)
    done = await h.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204, done.text
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
    fresh = bearer(await h.sign_in(email, NEW_PASSWORD))
    assert (await h.client.get("/v1/me/support-pin", headers=fresh)).json()["active"] is False
    _, agent = await h.agent()
    assert (await h.verify(agent, email, pin))["valid"] is False
    types = [event["type"] for event in await h.events(fresh)]
    assert "password_reset" in types
    await eventually(
        lambda: any(m["Subject"] == "Your password was reset" for m in inbox.to(email))
    )
    again = await h.client.post(
        "/v1/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD}
    )
    assert_problem(again, 400, "invalid_token")


async def test_only_the_newest_link_works(mailing: tuple[Harness, Inbox]) -> None:
    h, inbox = mailing
    email, _ = await h.user()
    for count in (1, 2):
        await h.client.post("/v1/auth/password-reset", json={"email": email})
        await reset_emails(inbox, email, count)
    older, newer = link_in(inbox, email, 0), link_in(inbox, email, 1)
    refused = await h.client.post(
        "/v1/auth/password-reset/confirm", json={"token": older, "new_password": NEW_PASSWORD}
    )
    assert_problem(refused, 400, "invalid_token")
    done = await h.client.post(
        "/v1/auth/password-reset/confirm", json={"token": newer, "new_password": NEW_PASSWORD}
    )
    assert done.status_code == 204


async def test_an_unknown_email_gets_the_same_answer(mailing: tuple[Harness, Inbox]) -> None:
    h, inbox = mailing
    email, _ = await h.user()
    # The work runs after the answer, so the answer (and its time) is the same for both;
    # tests/test_enumeration.py measures times, this checks what is said.
    answers: dict[str, Any] = {}
    for kind, address in (("known", email), ("unknown", "nobody-here@example.com")):
        response = await h.client.post("/v1/auth/password-reset", json={"email": address})
        answers[kind] = (response.status_code, response.json())
    assert answers["known"] == answers["unknown"] == (202, {"status": "accepted"})
    await reset_emails(inbox, email, 1)
    assert not inbox.to("nobody-here@example.com")


async def test_a_forged_or_garbled_token_is_invalid(h: Harness) -> None:
    for token in ("prt_" + "A" * 70, "not-a-token", "prt_"):
        refused = await h.client.post(
            "/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert_problem(refused, 400, "invalid_token")


# -- deletion -------------------------------------------------------------------------------


async def test_deleting_an_account_frees_its_email_and_keeps_the_audit_trail(h: Harness) -> None:
    email, user = await h.user()
    await h.issue_pin(user)
    wrong = await h.client.request("DELETE", "/v1/me", headers=user, json={"password": "nope"})
    assert_problem(wrong, 400, "invalid_credentials")
    deleted = await h.client.request("DELETE", "/v1/me", headers=user, json={"password": PASSWORD})
    assert deleted.status_code == 204, deleted.text
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
    refused = await h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert_problem(refused, 401, "invalid_credentials")
    # The address is free again.
    assert await h.signup(email)
    supervisor = await staff_member(h, "supervisor")
    audit = await h.client.get(
        "/v1/admin/audit", headers=supervisor.headers, params={"type": "account_deleted"}
    )
    names = [event["account_email"] for event in audit.json()["events"]]
    assert email not in names
    assert any(name and name.startswith("deleted-") for name in names)


async def test_a_deleted_account_is_emailed_at_its_old_address(
    mailing: tuple[Harness, Inbox],
) -> None:
    h, inbox = mailing
    email, user = await h.user()
    await h.client.request("DELETE", "/v1/me", headers=user, json={"password": PASSWORD})
    await eventually(
        lambda: any(m["Subject"] == "Your account was deleted" for m in inbox.to(email))
    )


async def test_a_notice_for_each_change(mailing: tuple[Harness, Inbox]) -> None:
    h, inbox = mailing
    email, user = await h.user()
    await h.client.post(
        "/v1/me/password",
        headers=user,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    await eventually(
        lambda: any(m["Subject"] == "Your password was changed" for m in inbox.to(email))
    )
