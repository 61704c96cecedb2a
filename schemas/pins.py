from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.common import UtcDatetime
from service.models import AccountVisibleEventType


class PinOut(BaseModel):
    pin: str = Field(pattern=r"^[0-9]{6,10}$", examples=["042917"])
    expires_at: UtcDatetime
    ttl_seconds: int


class PinStatusOut(BaseModel):
    active: bool
    expires_at: UtcDatetime | None


class PinEventOut(BaseModel):
    type: AccountVisibleEventType
    at: UtcDatetime
    agent: str | None = Field(description="The staff member's name, or the API key's name")
    case_ref: str | None = Field(default=None, description="The case the check belonged to")


class PinEventsOut(BaseModel):
    events: list[PinEventOut]
