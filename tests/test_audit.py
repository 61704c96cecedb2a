"""Every outcome is committed to the append-only audit log before it is answered."""

from __future__ import annotations

import asyncpg
import pytest

from tests.conftest import INVALID, Harness, wrong_pin

REFUSE_AUDIT = """
CREATE OR REPLACE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'audit refused by test'; END; $$;
CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION test_refuse_audit();
"""
ALLOW_AUDIT = "DROP TRIGGER IF EXISTS test_refuse_audit ON audit_events"


class AuditSwitch:
    """Makes Postgres refuse (or take again) every audit row, as a full disk or a broken
    constraint would."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def refuse(self) -> None:
        await self._conn.execute(REFUSE_AUDIT)

    async def allow(self) -> None:
        await self._conn.execute(ALLOW_AUDIT)


@pytest.fixture
async def audit_switch(pg: asyncpg.Connection):
    switch = AuditSwitch(pg)
    yield switch
    await switch.allow()


async def audit_rows(pg: asyncpg.Connection, account_id: str) -> list[asyncpg.Record]:
    return await pg.fetch(
        "SELECT type, agent_name, reason, request_id FROM audit_events"
        " WHERE account_id = $1 ORDER BY id",
        account_id,
    )


async def test_every_outcome_has_its_row(harness_factory, pg: asyncpg.Connection) -> None:
    h = await harness_factory(account_max_failures=3, pin_max_attempts=5)
    email, user = await h.user()
    agent_name, agent = await h.agent()
    account_id = (await h.client.get("/v1/me", headers=user)).json()["id"]
    pin = await h.issue_pin(user)
    await h.verify(agent, email, pin)
    await h.issue_pin(user)
    await h.client.delete("/v1/me/support-pin", headers=user)
    pin = await h.issue_pin(user)
    for _ in range(3):
        await h.verify(agent, email, wrong_pin(pin))
    await h.verify(agent, email, pin)  # refused while locked

    rows = await audit_rows(pg, account_id)
    assert [(r["type"], r["reason"]) for r in rows] == [
        ("issued", None),
        ("verified", None),
        ("issued", None),
        ("revoked", None),
        ("issued", None),
        ("verify_failed", "wrong_pin"),
        ("verify_failed", "wrong_pin"),
        ("verify_failed", "locked"),
        ("locked", None),
        ("verify_failed", "locked_out"),
    ]
    assert {r["agent_name"] for r in rows if "verif" in r["type"]} == {agent_name}
    assert all(r["request_id"] for r in rows)


async def test_unknown_email_verification_is_recorded(h: Harness, pg: asyncpg.Connection) -> None:
    agent_name, agent = await h.agent()
    assert await h.verify(agent, "nobody-at-all@example.com", "123456") == INVALID
    row = await pg.fetchrow(
        "SELECT type, account_id, reason FROM audit_events"
        " WHERE agent_name = $1 AND type = 'verify_failed'",
        agent_name,
    )
    assert row is not None
    assert dict(row) == {"type": "verify_failed", "account_id": None, "reason": "unknown_account"}


async def test_events_endpoint_lists_newest_first_with_agent(h: Harness) -> None:
    email, user = await h.user()
    agent_name, agent = await h.agent()
    pin = await h.issue_pin(user)
    await h.verify(agent, email, wrong_pin(pin))
    await h.verify(agent, email, pin)
    await h.issue_pin(user)
    await h.client.delete("/v1/me/support-pin", headers=user)
    events = await h.events(user)
    assert [(e["type"], e["agent"]) for e in events] == [
        ("revoked", None),
        ("issued", None),
        ("verified", agent_name),
        ("verify_failed", agent_name),
        ("issued", None),
    ]
    stamps = [e["at"] for e in events]
    assert stamps == sorted(stamps, reverse=True)
    assert all(s.endswith("Z") for s in stamps)
    limited = await h.client.get("/v1/me/support-pin/events?limit=2", headers=user)
    assert [e["type"] for e in limited.json()["events"]] == ["revoked", "issued"]
    bad = await h.client.get("/v1/me/support-pin/events?limit=0", headers=user)
    assert bad.status_code == 422


async def test_events_are_private_to_their_account(h: Harness) -> None:
    _, user_a = await h.user()
    _, user_b = await h.user()
    await h.issue_pin(user_a)
    assert await h.events(user_b) == []


async def test_issue_fails_with_503_and_no_new_pin_when_audit_is_refused(
    h: Harness, audit_switch: AuditSwitch
) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    old_pin = await h.issue_pin(user)
    await audit_switch.refuse()
    response = await h.client.post("/v1/me/support-pin", headers=user)
    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.headers["retry-after"]
    assert "pin" not in response.json()
    await audit_switch.allow()
    # The previous PIN was put back and still works; no other PIN exists.
    assert (await h.verify(agent, email, old_pin))["valid"] is True


async def test_verification_fails_with_503_and_pin_unconsumed_when_audit_is_refused(
    harness_factory, audit_switch: AuditSwitch
) -> None:
    h = await harness_factory(pin_max_attempts=2, account_max_failures=2)
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    await audit_switch.refuse()
    for candidate in [pin, wrong_pin(pin), wrong_pin(pin), wrong_pin(pin)]:
        response = await h.client.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": candidate}
        )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "unavailable"
    await audit_switch.allow()
    # Neither the right PIN (not consumed) nor the wrong ones (not counted) left a trace.
    assert (await h.verify(agent, email, pin))["valid"] is True
    types = [e["type"] for e in await h.events(user)]
    assert types == ["verified", "issued"]


async def test_revoke_fails_with_503_and_pin_kept_when_audit_is_refused(
    h: Harness, audit_switch: AuditSwitch
) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    await audit_switch.refuse()
    response = await h.client.delete("/v1/me/support-pin", headers=user)
    assert response.status_code == 503
    await audit_switch.allow()
    assert (await h.verify(agent, email, pin))["valid"] is True


async def test_audit_log_is_append_only(h: Harness, pg: asyncpg.Connection) -> None:
    _, user = await h.user()
    await h.issue_pin(user)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg.execute("UPDATE audit_events SET type = 'verified'")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg.execute("DELETE FROM audit_events")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pg.execute("TRUNCATE audit_events")
