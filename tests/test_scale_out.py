"""Two service processes on the same stores behave as one service: nothing that another
instance needs is kept in process memory."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import PASSWORD, Harness
from tests.live import running_server, settings_env

pytestmark = pytest.mark.slow


async def test_two_instances_share_pins_and_sessions(
    h: Harness, pg: asyncpg.Connection, tmp_path: Path
) -> None:
    _, agent = await h.agent()
    env = settings_env(h.services.settings)
    with (
        running_server(env, tmp_path / "one.log") as one,
        running_server(env, tmp_path / "two.log") as two,
        one.client() as a,
        two.client() as b,
    ):
        assert one.url != two.url
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        assert (
            a.post("/v1/accounts", json={"email": email, "password": PASSWORD}).status_code == 201
        )
        token = b.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        user = {"authorization": f"Bearer {token.json()['access_token']}"}

        # A PIN issued on one verifies on the other (once).
        pin = a.post("/v1/me/support-pin", headers=user).json()["pin"]
        ok = b.post("/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin})
        assert ok.json()["valid"] is True
        again = a.post("/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin})
        assert again.json()["valid"] is False

        # A PIN re-issued on the second instance kills the first one's PIN.
        first = a.post("/v1/me/support-pin", headers=user).json()["pin"]
        second = b.post("/v1/me/support-pin", headers=user).json()["pin"]
        if first != second:  # one chance in a million that the digits repeat
            stale = a.post(
                "/v1/agent/verifications", headers=agent, json={"email": email, "pin": first}
            )
            assert stale.json()["valid"] is False
        fresh = a.post(
            "/v1/agent/verifications", headers=agent, json={"email": email, "pin": second}
        )
        assert fresh.json()["valid"] is True
        assert b.get("/v1/me/support-pin", headers=user).json()["active"] is False

        # A logout on one ends the session on both.
        assert a.get("/v1/me", headers=user).status_code == 200
        assert b.get("/v1/me", headers=user).status_code == 200
        assert b.post("/v1/auth/logout", headers=user).status_code == 204
        assert a.get("/v1/me", headers=user).status_code == 401
        assert b.get("/v1/me", headers=user).status_code == 401

        # Both instances wrote the audit rows to the one database.
        issued = await pg.fetchval(
            """SELECT count(*) FROM audit_events e JOIN accounts a ON a.id = e.account_id
               WHERE a.email = $1 AND e.type = 'issued'""",
            email,
        )
        assert issued == 3
