"""`support-pin staff ...` and `support-pin agents create`, run as the command it is (a
subprocess) against the stores of an app under test: a set-up link the command prints works
in the app, and role changes and disabling end sessions at once."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import pyotp
import pytest

from service.persistence.audit import AuditQuery
from service.settings import Settings
from tests.conftest import PASSWORD, Harness, assert_problem
from tests.live import ROOT

SETUP_LINK = re.compile(r"https?://[^\s/]+/staff/setup#token=(sst_[A-Za-z0-9_-]+)")


def run_cli(h: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    """`support-pin` with the app's stores, Redis key prefix and secret key (the set-up
    link's secret is keyed with it), and nothing else from the environment's settings."""
    settings = h.services.settings
    assert settings.database_url
    assert settings.redis_url
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(
        ENVIRONMENT=settings.environment,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        REDIS_KEY_PREFIX=settings.redis_key_prefix,
        # On a cluster (TEST_REDIS_CLUSTER=1) a single-node client gets MOVED answers.
        REDIS_CLUSTER="true" if settings.redis_cluster else "false",
        SECRET_KEY=settings.secret_key.get_secret_value(),
        PUBLIC_URL="https://support.example",
    )
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def new_email() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}@corp.example"


class Authenticator:
    """The person's authenticator app. The service takes each time-step's code once, and
    one step either side of now; the commands in between take seconds, so the steps used
    are remembered rather than guessed relative to now (as tests/staffing.py does)."""

    def __init__(self) -> None:
        self.totp: pyotp.TOTP | None = None
        self.used: set[int] = set()

    async def code(self) -> str:
        assert self.totp is not None
        while True:
            now = int(time.time() // 30)
            for step in (now, now + 1, now - 1):
                if step not in self.used:
                    self.used.add(step)
                    return self.totp.at(step * 30)
            await asyncio.sleep(1)  # all three used: wait for the next step

    async def set_up(self, h: Harness, token: str) -> None:
        started = await h.client.post(
            "/v1/staff/setup", json={"token": token, "password": PASSWORD}
        )
        assert started.status_code == 200, started.text
        self.totp = pyotp.TOTP(started.json()["secret"])
        confirmed = await h.client.post(
            "/v1/staff/setup/confirm", json={"token": token, "code": await self.code()}
        )
        assert confirmed.status_code == 204, confirmed.text

    async def sign_in(self, h: Harness, email: str) -> dict[str, str]:
        first = await h.client.post(
            "/v1/staff/auth/token", data={"username": email, "password": PASSWORD}
        )
        assert_problem(first, 401, "mfa_required")
        second = await h.client.post(
            "/v1/staff/auth/token/mfa",
            json={"mfa_token": first.json()["mfa_token"], "code": await self.code()},
        )
        assert second.status_code == 200, second.text
        return {"Authorization": f"Bearer {second.json()['access_token']}"}


async def test_staff_add_prints_a_set_up_link_that_works(h: Harness) -> None:
    email = new_email()
    added = run_cli(h, "staff", "add", email.upper(), "--name", "Cli Admin", "--role", "admin")
    link = last_line(added)
    found = SETUP_LINK.fullmatch(link)
    assert found, link
    assert link.startswith("https://support.example/staff/setup#token=")
    assert urlsplit(link).query == ""  # the secret rides in the fragment only

    app = Authenticator()
    await app.set_up(h, found.group(1))
    admin = await app.sign_in(h, email)
    me = (await h.client.get("/v1/staff/me", headers=admin)).json()
    assert me["email"] == email  # stored as normalized
    assert me["name"] == "Cli Admin"
    assert me["role"] == "admin"
    assert me["source"] == "builtin"
    # The link worked once.
    again = await h.client.post(
        "/v1/staff/setup", json={"token": found.group(1), "password": PASSWORD}
    )
    assert_problem(again, 401, "invalid_credentials")

    listed = run_cli(h, "staff", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{email}\tCli Admin\tadmin\tbuiltin\tactive" in listed.stdout.splitlines()
    assert found.group(1) not in listed.stdout

    twice = run_cli(h, "staff", "add", email, "--name", "Again", "--role", "agent")
    assert twice.returncode == 1
    assert twice.stdout == ""
    assert len(twice.stderr.splitlines()) == 1
    assert "already exists" in twice.stderr


async def test_staff_role_and_disable_end_sessions(h: Harness) -> None:
    email = new_email()
    link = last_line(run_cli(h, "staff", "add", email, "--name", "Cli Agent", "--role", "agent"))
    app = Authenticator()
    await app.set_up(h, link.rpartition("#token=")[2])
    first = await app.sign_in(h, email)
    assert (await h.client.get("/v1/staff/me", headers=first)).json()["role"] == "agent"

    changed = run_cli(h, "staff", "role", email, "supervisor")
    assert changed.returncode == 0, changed.stderr
    assert_problem(await h.client.get("/v1/staff/me", headers=first), 401, "unauthenticated")
    second = await app.sign_in(h, email)
    assert (await h.client.get("/v1/staff/me", headers=second)).json()["role"] == "supervisor"
    assert (await h.client.get("/v1/admin/audit", headers=second)).status_code == 200
    assert (
        f"{email}\tCli Agent\tsupervisor\tbuiltin\tactive"
        in run_cli(h, "staff", "list").stdout.splitlines()
    )

    disabled = run_cli(h, "staff", "disable", email)
    assert disabled.returncode == 0, disabled.stderr
    assert_problem(await h.client.get("/v1/staff/me", headers=second), 401, "unauthenticated")
    refused = await h.client.post(
        "/v1/staff/auth/token", data={"username": email, "password": PASSWORD}
    )
    assert_problem(refused, 401, "invalid_credentials")
    assert (
        f"{email}\tCli Agent\tsupervisor\tbuiltin\tdisabled"
        in run_cli(h, "staff", "list").stdout.splitlines()
    )

    # Every change is audited as the command line's.
    found = await h.services.audit.search(AuditQuery(email=email, actor="cli"), 10)
    assert [(row["type"], row["reason"]) for row in found] == [
        ("staff_disabled", None),
        ("staff_role_changed", "agent->supervisor"),
        ("staff_added", "agent"),
    ]


async def test_staff_commands_refuse_what_is_not_there(h: Harness) -> None:
    missing = run_cli(h, "staff", "disable", new_email())
    assert missing.returncode == 1
    assert len(missing.stderr.splitlines()) == 1
    assert "no staff member" in missing.stderr

    for email in ("not an email", "Not An Email"):
        bad_email = run_cli(h, "staff", "add", email, "--name", "X", "--role", "agent")
        assert bad_email.returncode == 2
        assert bad_email.stdout == ""
        lines = bad_email.stderr.splitlines()
        assert len(lines) == 1, bad_email.stderr
        assert lines[0].startswith("error: invalid email: not a valid email address")
        assert await h.services.staff.by_email(email.lower()) is None

    bad_role = run_cli(h, "staff", "add", new_email(), "--name", "X", "--role", "owner")
    assert bad_role.returncode == 2  # argparse: one of agent, supervisor, admin
    assert "invalid choice" in bad_role.stderr


async def test_agents_create_prints_the_key_last(h: Harness) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    key = last_line(run_cli(h, "agents", "create", name))
    assert re.fullmatch(r"spa_[A-Za-z0-9_-]{43}", key)
    email, user = await h.user()
    pin = await h.issue_pin(user)
    verified = await h.verify({"Authorization": f"Bearer {key}"}, email, pin)
    assert verified["valid"] is True


@pytest.mark.parametrize("name", ["has space", "a" * 65], ids=["space", "65 characters"])
async def test_agents_create_refuses_a_bad_name_in_one_line(h: Harness, name: str) -> None:
    refused = run_cli(h, "agents", "create", name)
    assert refused.returncode != 0
    assert refused.stdout == ""
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert "invalid agent name" in lines[0]
    assert name not in [record.name for record in await h.services.agents.list()]
