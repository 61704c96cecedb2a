"""Agent keys: separation from user tokens, revocation, and the `support-pin agents` CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

from tests.conftest import Harness, assert_problem


async def test_verification_needs_an_agent_key(h: Harness) -> None:
    email, user = await h.user()
    pin = await h.issue_pin(user)
    body = {"email": email, "pin": pin}
    for headers in [{}, {"Authorization": "Bearer spa_unknown"}]:
        response = await h.client.post("/v1/agent/verifications", headers=headers, json=body)
        assert_problem(response, 401, "unauthenticated")
    # A signed-in customer is someone, without the role: 403.
    response = await h.client.post("/v1/agent/verifications", headers=user, json=body)
    assert_problem(response, 403, "forbidden")
    # The refused attempts did not touch the PIN.
    _, agent = await h.agent()
    assert (await h.verify(agent, email, pin))["valid"] is True


async def test_agent_key_is_refused_on_user_routes(h: Harness) -> None:
    _, agent = await h.agent()
    for method, path in [
        ("GET", "/v1/me"),
        ("POST", "/v1/me/support-pin"),
        ("GET", "/v1/me/support-pin"),
        ("DELETE", "/v1/me/support-pin"),
        ("GET", "/v1/me/support-pin/events"),
        ("POST", "/v1/auth/logout"),
    ]:
        response = await h.client.request(method, path, headers=agent)
        assert_problem(response, 401, "unauthenticated")


async def test_revoked_agent_key_stops_working_at_once(h: Harness) -> None:
    email, user = await h.user()
    name, agent = await h.agent()
    pin = await h.issue_pin(user)
    assert (await h.verify(agent, email, await h.issue_pin(user)))["valid"] is True
    pin = await h.issue_pin(user)
    await h.services.agents.revoke(name)
    response = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
    )
    assert_problem(response, 401, "unauthenticated")


def run_cli(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """`support-pin` against the same stores as the app under test (a revoked key must be
    refused by running services at once, so the CLI must share their Redis too)."""
    settings = h.services.settings
    assert settings.database_url
    assert settings.redis_url
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        # On a cluster (TEST_REDIS_CLUSTER=1) a single-node client gets MOVED answers.
        "REDIS_CLUSTER": "true" if settings.redis_cluster else "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_agents_cli_create_list_revoke(h: Harness) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = run_cli(h, "agents", "create", name)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"spa_[A-Za-z0-9_-]{43}", key)

    email, user = await h.user()
    pin = await h.issue_pin(user)
    agent = {"Authorization": f"Bearer {key}"}
    result = await h.verify(agent, email, pin)
    assert result["valid"] is True

    listed = run_cli(h, "agents", "list")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if line.startswith(name + "\t"))
    assert "\tactive\t" in line
    assert key not in listed.stdout

    again = run_cli(h, "agents", "create", name)
    assert again.returncode != 0
    assert "already exists" in again.stderr

    revoked = run_cli(h, "agents", "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    response = await h.client.post(
        "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
    )
    assert response.status_code == 401
    listed = run_cli(h, "agents", "list")
    assert f"{name}\trevoked" in listed.stdout

    missing = run_cli(h, "agents", "revoke", name)
    assert missing.returncode == 1
