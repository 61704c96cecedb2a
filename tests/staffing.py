"""Staff members for tests: added, set up and signed in through the real routes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import pyotp

from service.staff import Role
from tests.conftest import PASSWORD, Harness


@dataclass(frozen=True)
class StaffMember:
    id: str
    email: str
    name: str
    role: Role
    secret: str
    headers: dict[str, str]


def code_at(secret: str, steps_ahead: int = 0) -> str:
    """A TOTP code of a given time-step from now: each step's code is accepted once, so a
    second sign-in within 30 s uses the next step's (within the one step of drift allowed)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def set_up(h: Harness, token: str, password: str = PASSWORD, steps_ahead: int = 0) -> str:
    """Finish a set-up link: password, authenticator; the TOTP secret."""
    started = await h.client.post("/v1/staff/setup", json={"token": token, "password": password})
    assert started.status_code == 200, started.text
    secret: str = started.json()["secret"]
    confirmed = await h.client.post(
        "/v1/staff/setup/confirm", json={"token": token, "code": code_at(secret, steps_ahead)}
    )
    assert confirmed.status_code == 204, confirmed.text
    return secret


async def sign_in_staff(
    h: Harness, email: str, secret: str, *, steps_ahead: int = 1, password: str = PASSWORD
) -> str:
    first = await h.client.post(
        "/v1/staff/auth/token", data={"username": email, "password": password}
    )
    assert first.status_code == 401, first.text
    assert first.json()["code"] == "mfa_required"
    second = await h.client.post(
        "/v1/staff/auth/token/mfa",
        json={"mfa_token": first.json()["mfa_token"], "code": code_at(secret, steps_ahead)},
    )
    assert second.status_code == 200, second.text
    token: str = second.json()["access_token"]
    return token


async def staff_member(h: Harness, role: Role, name: str | None = None) -> StaffMember:
    email = f"{role}-{uuid.uuid4().hex[:10]}@corp.example"
    name = name or f"{role.title()} {uuid.uuid4().hex[:4]}"
    added = await h.services.staff.add(email, name, role, actor="test")
    secret = await set_up(h, added.setup_token)
    token = await sign_in_staff(h, email, secret)
    return StaffMember(
        str(added.staff.id), email, name, role, secret, {"Authorization": f"Bearer {token}"}
    )
