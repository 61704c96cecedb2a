"""Customers' own changes: password, reset, deletion, passkeys."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from schemas.accounts import PASSWORD_MIN_LENGTH
from schemas.common import PasswordStr, PrintableStr, StrictModel, UtcDatetime

NewPassword = Annotated[PasswordStr, Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)]


class PasswordChangeIn(StrictModel):
    current_password: PasswordStr = Field(min_length=1, max_length=1024)
    new_password: NewPassword


class PasswordResetIn(StrictModel):
    email: PrintableStr = Field(min_length=3, max_length=254, examples=["ada@example.com"])


class PasswordResetConfirmIn(StrictModel):
    token: str = Field(min_length=1, max_length=100, examples=["prt_…"])
    new_password: NewPassword


class AccountDeleteIn(StrictModel):
    password: PasswordStr | None = Field(
        default=None,
        max_length=1024,
        description="The account's password; an account without one must have signed in "
        "within the last 5 minutes instead.",
    )


class PasskeyIn(StrictModel):
    name: PrintableStr = Field(min_length=1, max_length=64, examples=["My phone"])
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential from navigator.credentials.create(), as JSON "
        "(base64url fields, as WebAuthn Level 3's toJSON())."
    )


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None


class PasskeysOut(BaseModel):
    passkeys: list[PasskeyOut]


class PasskeySignInIn(StrictModel):
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential from navigator.credentials.get(), as JSON."
    )


class AcceptedOut(BaseModel):
    status: str = Field(examples=["accepted"])
