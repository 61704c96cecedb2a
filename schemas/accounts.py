from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from schemas.common import StrictModel, UtcDatetime


class AccountCreate(StrictModel):
    email: EmailStr = Field(max_length=254, examples=["ada@example.com"])
    password: str = Field(min_length=12, max_length=1024, examples=["correct horse battery"])


class AccountOut(BaseModel):
    id: UUID
    email: str
    mfa_enabled: bool
    created_at: UtcDatetime
