from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from schemas.common import PasswordStr, StrictModel, UtcDatetime
from service.emails import normalize_email
from service.models import Account

# NIST SP 800-63B-4 asks for at least 8 (15 without MFA); our contract says 12.
PASSWORD_MIN_LENGTH = 12


class AccountCreate(StrictModel):
    # The one normalization (service/emails.py): the route gets the address as it is stored;
    # a refusal is a 422 whose message starts "not a valid email address" and says why.
    email: Annotated[str, AfterValidator(normalize_email)] = Field(
        max_length=254, json_schema_extra={"format": "email"}, examples=["ada@example.com"]
    )
    password: PasswordStr = Field(
        min_length=12, max_length=1024, examples=["correct horse battery"]
    )


class AccountOut(BaseModel):
    id: UUID
    email: str | None = Field(
        description=(
            "Null for an account made by the company's identity provider without an address "
            "it vouches for (agents find it by the provider's subject)."
        )
    )
    mfa_enabled: bool
    created_at: UtcDatetime
    sign_in_methods: list[Literal["password", "oidc"]] = Field(
        default_factory=lambda: ["password"],  # type: ignore[arg-type]
        description="How the account signs in: its own password, the company's provider, or both.",
    )

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        return cls(
            id=account.id,
            email=account.email,
            mfa_enabled=account.mfa_enabled,
            created_at=account.created_at,
            sign_in_methods=list(account.sign_in_methods),
        )
