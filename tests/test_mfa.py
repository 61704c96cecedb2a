"""Two-factor sign-in (TOTP and recovery codes), end to end on real PostgreSQL and Redis.

Codes are computed here with pyotp. The service accepts one 30-second step of drift either
way and each step once per account, so a test that needs several codes uses different steps
(-1, 0, +1) and first waits until it is not within a second of a step's edge, so the step the
test means is the step the service sees."""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pyotp
import pytest
from pydantic import ValidationError

from service.settings import Settings
from tests.conftest import PASSWORD, Harness, HarnessFactory

STEP = 30
RECOVERY_CODE = re.compile(r"^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$")


async def away_from_step_edge() -> None:
    """Wait (at most ~2 s) until the current 30-second step has more than a second to go."""
    into = time.time() % STEP
    if into > STEP - 1.5:
        await asyncio.sleep(STEP - into + 0.5)
    elif into < 0.5:
        await asyncio.sleep(0.5 - into)


def code(secret: str, steps: int = 0) -> str:
    """The code of the time-step `steps` away from now."""
    return pyotp.TOTP(secret).at(time.time() + steps * STEP)


def wrong_code(secret: str) -> str:
    """Six digits that are no code of this secret anywhere near now."""
    near = {code(secret, steps) for steps in range(-3, 4)}
    return next(c for c in (f"{n:06d}" for n in range(10)) if c not in near)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class MfaUser:
    email: str
    headers: dict[str, str]
    secret: str
    recovery_codes: list[str]
    confirm_code: str  # spent on the confirmation

    @property
    def wrong(self) -> str:
        return wrong_code(self.secret)


async def start(h: Harness, headers: dict[str, str]) -> dict[str, Any]:
    response = await h.client.post("/v1/me/mfa/totp", headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def confirm(h: Harness, headers: dict[str, str], code_: str) -> Any:
    return await h.client.post("/v1/me/mfa/totp/confirm", headers=headers, json={"code": code_})


async def enabled_user(h: Harness) -> MfaUser:
    """A signed-in account with 2FA on; the step before now is spent on the confirmation."""
    email, headers = await h.user()
    secret = (await start(h, headers))["secret"]
    await away_from_step_edge()
    confirm_code = code(secret, -1)
    response = await confirm(h, headers, confirm_code)
    assert response.status_code == 200, response.text
    return MfaUser(email, headers, secret, response.json()["recovery_codes"], confirm_code)


async def password_step(h: Harness, email: str) -> str:
    """Sign in with the password; 2FA is on, so the answer is `mfa_required` and a token."""
    response = await h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert response.status_code == 401, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["code"] == "mfa_required"
    assert "access_token" not in body
    mfa_token: str = body["mfa_token"]
    return mfa_token


async def code_step(h: Harness, mfa_token: str, code_: str) -> Any:
    return await h.client.post("/v1/auth/token/mfa", json={"mfa_token": mfa_token, "code": code_})


async def me(h: Harness, headers: dict[str, str]) -> Any:
    return await h.client.get("/v1/me", headers=headers)


async def test_enroll_confirm_then_sign_in_needs_second_step(h: Harness) -> None:
    email, headers = await h.user()
    enrollment = await start(h, headers)
    secret = enrollment["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # 160 bits
    uri = enrollment["otpauth_uri"]
    assert uri.startswith("otpauth://totp/Support%20PIN:")
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == secret
    assert (parsed.digits, parsed.interval) == (6, 30)
    assert enrollment["qr_svg"].startswith("<svg xmlns=")
    assert enrollment["qr_svg"].endswith("</svg>")
    # Not active before confirmation: password alone still signs in.
    assert (await me(h, headers)).json()["mfa_enabled"] is False
    await h.sign_in(email)

    await away_from_step_edge()
    response = await confirm(h, headers, code(secret))
    assert response.status_code == 200, response.text
    codes = response.json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.match(c) for c in codes)
    assert (await me(h, headers)).json()["mfa_enabled"] is True
    status = (await h.client.get("/v1/me/mfa", headers=headers)).json()
    assert status == {"enabled": True, "enrollment_pending": False, "recovery_codes_left": 10}

    mfa_token = await password_step(h, email)
    assert mfa_token.startswith("spm_")
    response = await code_step(h, mfa_token, code(secret, 1))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert (await me(h, auth(body["access_token"]))).json()["email"] == email
    # The mfa_token is single use, even with another valid code.
    again = await code_step(h, mfa_token, codes[0])
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_code"


async def test_enrollment_states(h: Harness) -> None:
    _, headers = await h.user()
    response = await confirm(h, headers, "123456")
    assert response.status_code == 409
    assert response.json()["code"] == "mfa_enrollment_not_started"

    first = (await start(h, headers))["secret"]
    second = (await start(h, headers))["secret"]  # replaces the unconfirmed first secret
    assert first != second
    assert (await h.client.get("/v1/me/mfa", headers=headers)).json()["enrollment_pending"]
    await away_from_step_edge()
    wrong = await confirm(h, headers, code(first))
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_code"
    assert (await me(h, headers)).json()["mfa_enabled"] is False
    assert (await confirm(h, headers, code(second))).status_code == 200

    response = await h.client.post("/v1/me/mfa/totp", headers=headers)
    assert response.status_code == 409
    assert response.json()["code"] == "mfa_already_enabled"
    response = await confirm(h, headers, code(second, 1))
    assert response.status_code == 409
    assert response.json()["code"] == "mfa_already_enabled"


async def test_wrong_code_and_malformed_input(h: Harness) -> None:
    user = await enabled_user(h)
    mfa_token = await password_step(h, user.email)
    right = code(user.secret)
    wrong = user.wrong
    response = await code_step(h, mfa_token, wrong)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_code"
    assert response.json()["attempts_left"] == 4
    assert wrong not in response.text

    response = await code_step(h, "spm_not-a-real-token", right)
    assert response.status_code == 401
    assert response.json()["attempts_left"] == 0
    response = await h.client.post("/v1/auth/token/mfa", json={"mfa_token": mfa_token})
    assert response.status_code == 422
    response = await code_step(h, mfa_token, "12")
    assert response.status_code == 422
    # The right code still works on the same token after one wrong one.
    assert (await code_step(h, mfa_token, right)).status_code == 200


async def test_replayed_code_is_refused(h: Harness) -> None:
    user = await enabled_user(h)
    # The code that confirmed enrollment (step -1) was spent there.
    refused = await code_step(h, await password_step(h, user.email), user.confirm_code)
    assert refused.status_code == 401

    current = code(user.secret)
    first = await code_step(h, await password_step(h, user.email), current)
    assert first.status_code == 200, first.text
    replay = await code_step(h, await password_step(h, user.email), current)
    assert replay.status_code == 401
    assert replay.json()["code"] == "invalid_code"


async def test_one_step_of_drift_accepted_two_refused(h: Harness) -> None:
    user = await enabled_user(h)  # spends step -1
    await away_from_step_edge()
    for steps in (-2, 2):
        refused = await code_step(h, await password_step(h, user.email), code(user.secret, steps))
        assert refused.status_code == 401, steps
    ahead = await code_step(h, await password_step(h, user.email), code(user.secret, 1))
    assert ahead.status_code == 200, ahead.text

    # Behind: on an account whose step -1 is still unspent (confirmed with step +1).
    email, headers = await h.user()
    secret = (await start(h, headers))["secret"]
    await away_from_step_edge()
    assert (await confirm(h, headers, code(secret, 1))).status_code == 200
    behind = await code_step(h, await password_step(h, email), code(secret, -1))
    assert behind.status_code == 200, behind.text


async def test_mfa_token_dies_after_five_wrong_codes(h: Harness) -> None:
    user = await enabled_user(h)
    mfa_token = await password_step(h, user.email)
    for left in (4, 3, 2, 1, 0):
        response = await code_step(h, mfa_token, user.wrong if left % 2 else "aaaa-aaaa-aaaa")
        assert response.status_code == 401
        assert response.json()["attempts_left"] == left
    dead = await code_step(h, mfa_token, code(user.secret))
    assert dead.status_code == 401
    assert dead.json()["code"] == "invalid_code"
    assert dead.json()["attempts_left"] == 0
    # A new sign-in gives a new token; the right code works (5 < the account's limit).
    fresh = await code_step(h, await password_step(h, user.email), code(user.secret))
    assert fresh.status_code == 200, fresh.text


async def test_concurrent_wrong_codes_cannot_exceed_the_token_limit(
    h: Harness, pg: asyncpg.Connection
) -> None:
    user = await enabled_user(h)
    mfa_token = await password_step(h, user.email)
    answers = await asyncio.gather(*(code_step(h, mfa_token, user.wrong) for _ in range(12)))
    assert all(a.status_code == 401 for a in answers)
    assert sorted(a.json()["attempts_left"] for a in answers) == [0] * 8 + [1, 2, 3, 4]
    failed = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE account_id = $1 AND type = 'mfa_failed'",
        _uuid((await me(h, user.headers)).json()),
    )
    assert failed == 5  # only five codes were ever checked


async def test_mfa_token_lives_five_minutes_and_only_as_a_digest(h: Harness) -> None:
    user = await enabled_user(h)
    mfa_token = await password_step(h, user.email)
    client = h.services.redis.client
    keys = [k async for k in client.scan_iter(match=h.services.redis.keys.prefix + "mfatok:*")]
    assert len(keys) == 1
    assert mfa_token.encode() not in keys[0]
    assert 295_000 <= await client.pttl(keys[0]) <= 300_000
    stored = await client.hgetall(keys[0])
    assert all(mfa_token not in repr(value) for value in stored.values())


async def test_account_limit_survives_new_sign_ins(
    harness_factory: HarnessFactory, pg: asyncpg.Connection
) -> None:
    h = await harness_factory(mfa_account_max_failures=7, mfa_lock_seconds=3600)
    user = await enabled_user(h)
    first = await password_step(h, user.email)
    for _ in range(5):
        assert (await code_step(h, first, user.wrong)).status_code == 401
    second = await password_step(h, user.email)  # a new sign-in does not reset the count
    assert (await code_step(h, second, user.wrong)).status_code == 401
    seventh = await code_step(h, second, user.wrong)
    assert seventh.status_code == 401

    third = await password_step(h, user.email)
    locked = await code_step(h, third, code(user.secret))
    assert locked.status_code == 429
    assert locked.json()["code"] == "mfa_locked"
    assert 3500 <= int(locked.headers["retry-after"]) <= 3600
    lock_key = h.services.redis.keys.mfa_lock(_uuid((await me(h, user.headers)).json()))
    assert 3_500_000 <= await h.services.redis.client.pttl(lock_key) <= 3_600_000
    # Recovery codes and turning 2FA off are second-factor checks too: refused while locked.
    assert (await code_step(h, third, user.recovery_codes[0])).status_code == 429
    response = await h.client.request(
        "DELETE", "/v1/me/mfa/totp", headers=user.headers, json={"code": code(user.secret)}
    )
    assert response.status_code == 429
    assert "mfa_locked" in [e["type"] for e in await h.events(user.headers)]
    failed = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE account_id = $1 AND type = 'mfa_failed'",
        _uuid((await me(h, user.headers)).json()),
    )
    assert failed == 7
    # Only the sign-in of this account is locked, not anyone else's.
    other = await enabled_user(h)
    assert (await code_step(h, await password_step(h, other.email), code(other.secret))).is_success


def _uuid(account: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(account["id"])


async def test_account_limit_counts_consecutive_failures(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(mfa_account_max_failures=3)
    user = await enabled_user(h)
    token = await password_step(h, user.email)
    for _ in range(2):
        assert (await code_step(h, token, user.wrong)).status_code == 401
    assert (await code_step(h, token, code(user.secret))).status_code == 200  # resets the count
    token = await password_step(h, user.email)
    for _ in range(2):
        assert (await code_step(h, token, user.wrong)).status_code == 401
    await away_from_step_edge()
    assert (await code_step(h, token, code(user.secret, 1))).status_code == 200


async def test_recovery_codes_work_once_each(h: Harness) -> None:
    user = await enabled_user(h)
    first, second = user.recovery_codes[:2]
    # Any case, with or without hyphens.
    response = await code_step(
        h, await password_step(h, user.email), first.replace("-", "").upper()
    )
    assert response.status_code == 200, response.text
    again = await code_step(h, await password_step(h, user.email), first)
    assert again.status_code == 401
    response = await code_step(h, await password_step(h, user.email), second)
    assert response.status_code == 200
    status = (await h.client.get("/v1/me/mfa", headers=user.headers)).json()
    assert status["recovery_codes_left"] == 8
    types = [e["type"] for e in await h.events(user.headers)]
    assert types.count("recovery_code_used") == 2
    # Another account's code is not this account's.
    other = await enabled_user(h)
    refused = await code_step(h, await password_step(h, other.email), user.recovery_codes[2])
    assert refused.status_code == 401


async def test_regenerated_recovery_codes_replace_the_old_ones(h: Harness) -> None:
    user = await enabled_user(h)
    path = "/v1/me/mfa/recovery-codes"
    wrong = await h.client.post(path, headers=user.headers, json={"code": user.wrong})
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_code"
    response = await h.client.post(path, headers=user.headers, json={"code": code(user.secret)})
    assert response.status_code == 200, response.text
    new_codes = response.json()["recovery_codes"]
    assert len(new_codes) == 10
    assert not set(new_codes) & set(user.recovery_codes)
    old = await code_step(h, await password_step(h, user.email), user.recovery_codes[3])
    assert old.status_code == 401
    new = await code_step(h, await password_step(h, user.email), new_codes[3])
    assert new.status_code == 200
    assert "recovery_codes_regenerated" in [e["type"] for e in await h.events(user.headers)]

    _, plain = await h.user()
    off = await h.client.post(path, headers=plain, json={"code": "000000"})
    assert off.status_code == 409
    assert off.json()["code"] == "mfa_not_enabled"


async def test_concurrent_use_of_one_code_succeeds_once(h: Harness) -> None:
    user = await enabled_user(h)
    tokens = [await password_step(h, user.email) for _ in range(4)]
    current = code(user.secret)
    answers = await asyncio.gather(*(code_step(h, t, current) for t in tokens))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]

    tokens = [await password_step(h, user.email) for _ in range(4)]
    answers = await asyncio.gather(*(code_step(h, t, user.recovery_codes[5]) for t in tokens))
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]


async def test_disable_with_totp_or_recovery_code(h: Harness, pg: asyncpg.Connection) -> None:
    user = await enabled_user(h)
    delete = "/v1/me/mfa/totp"
    wrong = await h.client.request(
        "DELETE", delete, headers=user.headers, json={"code": user.wrong}
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_code"
    done = await h.client.request(
        "DELETE", delete, headers=user.headers, json={"code": code(user.secret)}
    )
    assert done.status_code == 204, done.text
    assert (await me(h, user.headers)).json()["mfa_enabled"] is False
    await h.sign_in(user.email)  # the password alone is enough again
    again = await h.client.request(
        "DELETE", delete, headers=user.headers, json={"code": code(user.secret)}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "mfa_not_enabled"
    account_id = _uuid((await me(h, user.headers)).json())
    assert (
        await pg.fetchval(
            "SELECT count(*) FROM account_recovery_codes WHERE account_id = $1", account_id
        )
        == 0
    )
    types = [e["type"] for e in await h.events(user.headers)]
    assert types[:2] == ["mfa_disabled", "mfa_enabled"]

    # With a recovery code (it is spent, then 2FA goes off; enrolling again works).
    other = await enabled_user(h)
    done = await h.client.request(
        "DELETE", delete, headers=other.headers, json={"code": other.recovery_codes[9]}
    )
    assert done.status_code == 204
    types = [e["type"] for e in await h.events(other.headers)]
    assert types[:3] == ["mfa_disabled", "recovery_code_used", "mfa_enabled"]
    assert (await start(h, other.headers))["secret"] != other.secret


async def test_secrets_not_readable_in_the_database(h: Harness, pg: asyncpg.Connection) -> None:
    user = await enabled_user(h)
    account_id = _uuid((await me(h, user.headers)).json())
    row = await pg.fetchrow(
        "SELECT t::text AS text, secret_encrypted FROM account_totp t WHERE account_id = $1",
        account_id,
    )
    assert row is not None
    raw_secret = base64.b32decode(user.secret)
    blob: bytes = row["secret_encrypted"]
    for needle in (user.secret, user.secret.lower()):
        assert needle not in row["text"]
        assert needle.encode() not in blob
    assert raw_secret not in blob
    assert raw_secret.hex() not in row["text"]
    stored_codes = await pg.fetch(
        "SELECT c::text AS text FROM account_recovery_codes c WHERE account_id = $1", account_id
    )
    assert len(stored_codes) == 10
    for recovery in user.recovery_codes:
        for needle in (recovery, recovery.replace("-", ""), recovery.encode().hex()):
            assert all(needle not in r["text"] for r in stored_codes)

    # The ciphertext is bound to its account: copied to another one, it does not work.
    other = await enabled_user(h)
    other_id = _uuid((await me(h, other.headers)).json())
    await pg.execute(
        "UPDATE account_totp SET secret_encrypted = $1 WHERE account_id = $2", blob, other_id
    )
    await away_from_step_edge()
    refused = await code_step(h, await password_step(h, other.email), code(user.secret, 1))
    assert refused.status_code == 401


async def test_enabling_ends_password_only_sessions(h: Harness) -> None:
    email, headers = await h.user()
    elsewhere = [auth(await h.sign_in(email)) for _ in range(3)]
    other_email, other_headers = await h.user()
    secret = (await start(h, headers))["secret"]
    await away_from_step_edge()
    assert (await confirm(h, headers, code(secret))).status_code == 200
    for ended in elsewhere:
        assert (await me(h, ended)).status_code == 401
    assert (await me(h, other_headers)).json()["email"] == other_email  # not this account
    assert (await me(h, headers)).status_code == 200  # the session that proved the code


async def test_audit_events_listed_for_the_user(h: Harness, pg: asyncpg.Connection) -> None:
    user = await enabled_user(h)
    await code_step(h, await password_step(h, user.email), user.wrong)
    await code_step(h, await password_step(h, user.email), user.recovery_codes[0])
    response = await h.client.request(
        "DELETE", "/v1/me/mfa/totp", headers=user.headers, json={"code": code(user.secret)}
    )
    assert response.status_code == 204
    types = [e["type"] for e in await h.events(user.headers)]
    assert types == ["mfa_disabled", "recovery_code_used", "mfa_enabled"]
    account_id = _uuid((await me(h, user.headers)).json())
    rows = await pg.fetch(
        "SELECT type, reason, request_id FROM audit_events WHERE account_id = $1 ORDER BY id",
        account_id,
    )
    assert [(r["type"], r["reason"]) for r in rows] == [
        ("mfa_enabled", None),
        ("mfa_failed", "sign_in"),
        ("recovery_code_used", None),
        ("mfa_disabled", None),
    ]
    assert all(r["request_id"] for r in rows)


@pytest.mark.parametrize(
    "override",
    [
        {"mfa_account_max_failures": 101},
        {"mfa_account_max_failures": 0},
        {"mfa_token_max_attempts": 11},
        {"mfa_totp_issuer": "Evil:Issuer"},
    ],
)
def test_settings_refuse_unsafe_values(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(**override)


def test_openapi_yaml_in_sync() -> None:
    from api.openapi import SPEC_PATH, generate

    assert Path(SPEC_PATH).read_text(encoding="utf-8") == generate()


async def test_no_password_only_session_survives_2fa_turned_on_mid_sign_in(
    h: Harness, pg: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2FA switched on between the password check and the session being stored: the
    password-only session is withdrawn and the answer is `mfa_required`."""
    email, headers = await h.user()
    await start(h, headers)
    sessions = h.services.sessions
    create = sessions.create
    made: list[str] = []

    async def create_while_2fa_turns_on(account: uuid.UUID) -> str:
        token = await create(account)
        made.append(token)
        await pg.execute(
            "UPDATE account_totp SET enabled_at = now() WHERE account_id = $1", account
        )
        return token

    monkeypatch.setattr(sessions, "create", create_while_2fa_turns_on)
    await password_step(h, email)
    assert len(made) == 1
    assert await sessions.account_for(made[0]) is None
    monkeypatch.undo()
    await password_step(h, email)  # 2FA is on now: the password alone stays refused
