"""No secret reaches a log line or a problem document.

Every flow runs against the app served by a real uvicorn (in this process, so uvicorn's own
loggers are captured too) with logging at DEBUG everywhere: the root logger and the uvicorn,
asyncpg, redis, httpx and service loggers. Everything is captured twice: every LogRecord
(message, arguments, extra fields, exception text) through caplog, and everything written to
stdout/stderr through capfd (with a stderr handler on the root logger). Both are searched for
each secret used: passwords (right and wrong), session tokens, agent keys (active and
revoked), PINs (as issued and as an agent might type them, with a space), and for two-factor
sign-in the TOTP secret, TOTP codes (right and wrong), mfa_tokens and recovery codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pyotp
import pytest
import uvicorn

from api.app import create_app
from service.container import open_services
from service.settings import Settings
from tests.live import free_port

LOGGERS = (
    "",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "asyncpg",
    "redis",
    "httpx",
    "httpcore",
    "asyncio",
    "support_pin",
    "service",
    "api",
    "fastapi",
)

# LogRecord attributes that are bookkeeping (times, ids, line numbers), not content.
_BOOKKEEPING = set(vars(logging.LogRecord("n", 0, "p", 0, "m", None, None))) | {"message"}


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler or a structured formatter could print from `record`."""
    parts = [record.getMessage(), repr(record.msg), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    parts.append(str(record.exc_text or ""))
    parts.extend(
        f"{key}={value!r}" for key, value in vars(record).items() if key not in _BOOKKEEPING
    )
    return "\n".join(parts)


def leaks(text: str, secrets_used: dict[str, str]) -> list[str]:
    """Names of the secrets found in `text`. Digits-only secrets (PINs) count only as a whole
    number, so a PIN-like run inside a longer number (a thread id) is not a false alarm."""
    found = []
    for name, secret in secrets_used.items():
        if secret.replace(" ", "").isdigit():
            pattern = rf"(?<![\d.]){re.escape(secret)}(?!\d)"
            if re.search(pattern, text):
                found.append(name)
        elif secret in text:
            found.append(name)
    return found


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]  # generic in typeshed, not at runtime
    """Writes to whatever `sys.stderr` is at the time (pytest swaps it between phases)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def test_the_scanner_finds_what_it_looks_for() -> None:
    planted = {"pin": "042917", "password": "hunter2-but-longer", "spaced": "042 917"}
    assert leaks("verify pin=042917 failed", planted) == ["pin"]
    assert leaks("thread 1400429175551 took 0.042917 s", planted) == []
    assert leaks('{"password": "hunter2-but-longer"}', planted) == ["password"]
    assert leaks("typed 042 917", planted) == ["spaced"]
    record = logging.LogRecord("x", logging.INFO, "p", 1, "login", None, None)
    record.password = "hunter2-but-longer"  # an extra field a JSON formatter would print
    assert leaks(record_text(record), planted) == ["password"]


@pytest.fixture
async def served(
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a real uvicorn in this event loop, all loggers at DEBUG (capfd is set up
    first, so the stderr handler writes into its capture)."""
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    stderr_handler = CurrentStderrHandler()
    stderr_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(stderr_handler)
    settings = make_settings(log_level="DEBUG", rate_limit_sign_in_per_account="6/minute")
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,  # keep the test's capture; uvicorn's loggers propagate to root
        log_level="debug",
        access_log=True,
        proxy_headers=False,
        ws="none",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(300):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("uvicorn did not start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)
        logging.getLogger().removeHandler(stderr_handler)


async def test_no_secret_in_logs_or_problem_documents(
    served: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    make_settings: Callable[..., Settings],
) -> None:
    client = served
    used: dict[str, str] = {}
    # Where a secret may legitimately appear in an answer: the answer that hands it out.
    handed_out: list[httpx.Response] = []
    answers: list[httpx.Response] = []

    async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        answers.append(response)
        return response

    email = f"hygiene-{uuid.uuid4().hex[:10]}@example.com"
    used["password"] = password = "pw-" + secrets.token_urlsafe(18)
    used["wrong password"] = wrong_password = password + "x"
    used["other password"] = other_password = "pw-" + secrets.token_urlsafe(18)

    # Sign-up, including bad input that carries a password.
    assert (
        await call("POST", "/v1/accounts", json={"email": email, "password": password})
    ).status_code == 201
    assert (
        await call("POST", "/v1/accounts", json={"email": email, "password": other_password})
    ).status_code == 409
    assert (
        await call("POST", "/v1/accounts", json={"email": "nope", "password": other_password})
    ).status_code == 422
    malformed = '{"email": "a@example.com", "password": "' + other_password
    assert (
        await call(
            "POST",
            "/v1/accounts",
            content=malformed,
            headers={"content-type": "application/json"},
        )
    ).status_code == 422
    oversized = json.dumps({"email": email, "password": other_password, "pad": "x" * 70_000})
    assert (
        await call(
            "POST", "/v1/accounts", content=oversized, headers={"content-type": "application/json"}
        )
    ).status_code == 413

    # Sign-in: right, wrong password, unknown email, then rate-limited.
    signed_in = await call("POST", "/v1/auth/token", data={"username": email, "password": password})
    assert signed_in.status_code == 200
    handed_out.append(signed_in)
    used["session token"] = token = signed_in.json()["access_token"]
    user = {"Authorization": f"Bearer {token}"}
    for username, attempt in ((email, wrong_password), ("nobody@example.com", password)):
        response = await call(
            "POST", "/v1/auth/token", data={"username": username, "password": attempt}
        )
        assert response.status_code == 401
    served.cookies.clear()  # from a browser that never signed in: limited per email
    for _ in range(6):
        last = await call(
            "POST", "/v1/auth/token", data={"username": email, "password": wrong_password}
        )
    assert last.status_code == 429

    # Agents: an active and a revoked key (made as ops would, through the service).

    ops = await open_services(make_settings())
    try:
        _, agent_key = await ops.agents.create(f"hygiene-{uuid.uuid4().hex[:8]}")
        revoked_name = f"hygiene-revoked-{uuid.uuid4().hex[:8]}"
        _, revoked_key = await ops.agents.create(revoked_name)
        await ops.agents.revoke(revoked_name)
    finally:
        await ops.close()
    used["agent key"] = agent_key
    used["revoked agent key"] = revoked_key
    agent = {"Authorization": f"Bearer {agent_key}"}

    # PINs: issue, status, verify wrong / right / spaced / replaced, revoke, events.
    pins: list[str] = []
    for _ in range(3):
        issued = await call("POST", "/v1/me/support-pin", headers=user)
        assert issued.status_code == 201
        handed_out.append(issued)
        pins.append(issued.json()["pin"])
    assert (await call("GET", "/v1/me/support-pin", headers=user)).status_code == 200
    current = pins[-1]
    wrong_pin = f"{(int(current) + 1) % 10**6:06d}"
    for email_asked, pin in ((email, wrong_pin), (email, pins[0]), ("nobody@example.com", current)):
        response = await call(
            "POST",
            "/v1/agent/verifications",
            headers=agent,
            json={"email": email_asked, "pin": pin},
        )
        assert response.json()["valid"] is False
    spaced = f"{current[:3]} {current[3:]}"
    response = await call(
        "POST", "/v1/agent/verifications", headers=agent, json={"email": email, "pin": spaced}
    )
    assert response.json()["valid"] is True
    response = await call(
        "POST",
        "/v1/agent/verifications",
        headers=agent,
        json={"email": email, "pin": current + "x"},
    )
    assert response.status_code == 422
    # Wrong kinds of credential on the agent route: a revoked key is no credential (401), a
    # customer's session is one without the role (403).
    for key, refused in ((revoked_key, 401), (token, 403)):
        response = await call(
            "POST",
            "/v1/agent/verifications",
            headers={"Authorization": f"Bearer {key}"},
            json={"email": email, "pin": current},
        )
        assert response.status_code == refused
    issued = await call("POST", "/v1/me/support-pin", headers=user)
    handed_out.append(issued)
    pins.append(issued.json()["pin"])
    assert (await call("DELETE", "/v1/me/support-pin", headers=user)).status_code == 204
    assert (await call("GET", "/v1/me/support-pin/events", headers=user)).status_code == 200
    assert (await call("GET", "/v1/me", headers=agent)).status_code == 401
    assert (await call("GET", "/v1/me", headers=user)).status_code == 200
    assert (await call("GET", "/readyz")).status_code == 200

    # Two-factor sign-in, on an account of its own (the first one is rate-limited by now):
    # enroll, confirm, sign in with a TOTP code (after a wrong one) and with a recovery code,
    # replace the recovery codes, turn it off.
    email_2fa = f"hygiene-2fa-{uuid.uuid4().hex[:10]}@example.com"
    used["2FA password"] = password_2fa = "pw-" + secrets.token_urlsafe(18)
    account = {"email": email_2fa, "password": password_2fa}
    assert (await call("POST", "/v1/accounts", json=account)).status_code == 201
    form = {"username": email_2fa, "password": password_2fa}
    first = await call("POST", "/v1/auth/token", data=form)
    handed_out.append(first)
    used["2FA session token"] = first.json()["access_token"]
    mfa_user = {"Authorization": f"Bearer {first.json()['access_token']}"}
    enrollment = await call("POST", "/v1/me/mfa/totp", headers=mfa_user)
    assert enrollment.status_code == 201
    handed_out.append(enrollment)
    used["TOTP secret"] = enrollment.json()["secret"]
    totp = pyotp.TOTP(enrollment.json()["secret"])
    now = time.time()
    used["TOTP code (confirm)"] = totp.at(now)
    confirmed = await call(
        "POST", "/v1/me/mfa/totp/confirm", headers=mfa_user, json={"code": totp.at(now)}
    )
    assert confirmed.status_code == 200, confirmed.text
    handed_out.append(confirmed)
    recovery = confirmed.json()["recovery_codes"]
    valid_now = {totp.at(now + drift) for drift in (-60, -30, 0, 30, 60)}
    used["wrong TOTP code"] = wrong_code = next(
        f"{n:06d}" for n in range(1, 100) if f"{n:06d}" not in valid_now
    )
    for code in (wrong_code, totp.at(now + 30), recovery[0]):
        step_one = await call("POST", "/v1/auth/token", data=form)
        assert step_one.status_code == 401
        assert step_one.json()["code"] == "mfa_required"
        handed_out.append(step_one)  # the mfa_token is handed out in this problem document
        used[f"mfa token {len(used)}"] = step_one.json()["mfa_token"]
        step_two = await call(
            "POST",
            "/v1/auth/token/mfa",
            json={"mfa_token": step_one.json()["mfa_token"], "code": code},
        )
        if code == wrong_code:
            assert step_two.status_code == 401
        else:
            assert step_two.status_code == 200, step_two.text
            handed_out.append(step_two)
            used[f"2FA session token {len(used)}"] = step_two.json()["access_token"]
    used["TOTP code (sign-in)"] = totp.at(now + 30)
    replaced = await call(
        "POST", "/v1/me/mfa/recovery-codes", headers=mfa_user, json={"code": recovery[1]}
    )
    assert replaced.status_code == 200, replaced.text
    handed_out.append(replaced)
    new_recovery = replaced.json()["recovery_codes"]
    assert (await call("GET", "/v1/me/mfa", headers=mfa_user)).status_code == 200
    turned_off = await call(
        "DELETE", "/v1/me/mfa/totp", headers=mfa_user, json={"code": new_recovery[0]}
    )
    assert turned_off.status_code == 204, turned_off.text
    for index, code in enumerate(recovery + new_recovery):
        used[f"recovery code {index}"] = code

    # Logout, then the dead token.
    assert (await call("POST", "/v1/auth/logout", headers=user)).status_code == 204
    assert (await call("GET", "/v1/me", headers=user)).status_code == 401
    metrics = await call("GET", "/metrics")  # every metric name and label is searched too

    for index, pin in enumerate(pins):
        used[f"PIN {index}"] = pin
        used[f"PIN {index} as typed"] = f"{pin[:3]} {pin[3:]}"
    used["wrong PIN"] = wrong_pin

    records = caplog.records
    captured = capfd.readouterr()
    # The capture really saw the server at DEBUG: DEBUG records from some library, and on
    # stderr the service's access lines (written straight there by `service.logs.access_line`,
    # not as records; uvicorn's own access log is switched off as a duplicate).
    assert any(record.levelno == logging.DEBUG for record in records)
    assert captured.err.count('"logger":"support_pin.access"') >= len(answers)

    found = {name: record.name for record in records for name in leaks(record_text(record), used)}
    assert found == {}, f"secrets in log records: {found}"
    assert leaks(captured.out + captured.err, used) == []
    for response in answers:
        if response in handed_out:
            continue
        text = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        assert leaks(text, used) == [], (response.request.method, response.request.url)
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text  # the exposition really was searched
