from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, EmailStr, Field

from schemas.common import PasswordStr, StrictModel, UtcDatetime
from service.models import Account

# NIST SP 800-63B-4 asks for at least 8 (15 without MFA); our contract says 12.
PASSWORD_MIN_LENGTH = 12


class AccountCreate(StrictModel):
    email: EmailStr = Field(max_length=254, examples=["ada@example.com"])
    password: PasswordStr = Field(
        min_length=12, max_length=1024, examples=["correct horse battery"]
    )


class AccountOut(BaseModel):
    id: UUID
    email: str
    mfa_enabled: bool
    created_at: UtcDatetime

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(
            id=account.id,
            email=account.email,
            mfa_enabled=account.mfa_enabled,
            created_at=account.created_at,
        )
