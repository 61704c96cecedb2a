from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.common import UtcDatetime


class PinOut(BaseModel):
    pin: str = Field(pattern=r"^[0-9]{6,10}$", examples=["042917"])
    expires_at: UtcDatetime
    ttl_seconds: int


class PinStatusOut(BaseModel):
    active: bool
    expires_at: UtcDatetime | None


EventTypeName = Literal[
    "issued",
    "revoked",
    "verified",
    "verify_failed",
    "locked",
    "mfa_enabled",
    "mfa_disabled",
    "recovery_code_used",
    "recovery_codes_regenerated",
    "mfa_locked",
]


class PinEventOut(BaseModel):
    type: EventTypeName
    at: UtcDatetime
    agent: str | None


class PinEventsOut(BaseModel):
    events: list[PinEventOut]
