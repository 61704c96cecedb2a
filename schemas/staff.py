"""Support staff, their sign-in, and administration."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from schemas.accounts import PASSWORD_MIN_LENGTH
from schemas.common import PasswordStr, PrintableStr, StrictModel, UtcDatetime
from service.agents import AGENT_NAME_PATTERN
from service.emails import normalize_email
from service.staff import Role, Staff

# The ticket or case a check belongs to, as the help desk writes it.
CaseRef = Annotated[
    PrintableStr,
    Field(
        min_length=1,
        max_length=64,
        description="The ticket or case this belongs to (1–64 printable characters)",
        examples=["CASE-20417"],
    ),
]


class StaffOut(BaseModel):
    id: UUID
    email: str
    name: str
    role: Role
    source: Literal["sso", "builtin"]
    disabled: bool
    last_sign_in_at: UtcDatetime | None

    @classmethod
    def of(cls, staff: Staff) -> StaffOut:
        return cls(
            id=staff.id,
            email=staff.email,
            name=staff.name,
            role=staff.role,
            source=staff.source,
            disabled=staff.disabled,
            last_sign_in_at=staff.last_sign_in_at,
        )


class StaffListOut(BaseModel):
    staff: list[StaffOut]


class StaffCreate(StrictModel):
    email: Annotated[str, AfterValidator(normalize_email)] = Field(
        max_length=254, json_schema_extra={"format": "email"}, examples=["sam@company.example"]
    )
    name: PrintableStr = Field(
        min_length=1, max_length=100, description="Shown to customers", examples=["Sam"]
    )
    role: Role


class StaffCreated(BaseModel):
    id: UUID
    setup_url: str = Field(
        description=(
            "The set-up link (single use, 24 hours); its secret is in the fragment, which "
            "no server logs. Give it to the person by a channel you trust."
        )
    )


class StaffPatch(StrictModel):
    role: Role | None = None
    disabled: bool | None = None


class StaffSetupIn(StrictModel):
    token: str = Field(min_length=1, max_length=128, examples=["sst_…"])
    password: PasswordStr = Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)


class StaffSetupConfirmIn(StrictModel):
    token: str = Field(min_length=1, max_length=128, examples=["sst_…"])
    code: str = Field(min_length=6, max_length=16, pattern=r"^[0-9 ]+$", examples=["492039"])


class StaffMeOut(BaseModel):
    id: UUID
    email: str
    name: str
    role: Role
    source: Literal["sso", "builtin"]


class StaffSsoOut(BaseModel):
    display_name: str
    login_url: str


class StaffSignInMethodsOut(BaseModel):
    password: bool = Field(description="Built-in staff sign-in (always offered)")
    sso: StaffSsoOut | None


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None
    revoked: bool


class ApiKeysOut(BaseModel):
    api_keys: list[ApiKeyOut]


class ApiKeyCreate(StrictModel):
    name: str = Field(
        pattern=AGENT_NAME_PATTERN,
        description="1–64 letters, digits, '.', '_' or '-'; shown to customers for its checks",
        examples=["crm-tooling"],
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyCreated(BaseModel):
    id: UUID
    name: str
    key: str = Field(description="The API key, shown only this once")
    expires_at: UtcDatetime | None


class UnlockIn(StrictModel):
    email: PrintableStr = Field(min_length=3, max_length=254, examples=["ada@example.com"])


class AuditEventOut(BaseModel):
    id: int
    at: UtcDatetime
    type: str
    account_email: str | None
    actor: str | None = Field(description="A staff email, `key:<name>` for an API key, or `cli`")
    case_ref: str | None
    reason: str | None
    request_id: str | None
    target: str | None = Field(description="What an administrative action was done to")


class AuditPageOut(BaseModel):
    events: list[AuditEventOut]
    next_cursor: str | None
