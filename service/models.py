"""Plain domain values passed between service/ and api/."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args
from uuid import UUID


@dataclass(frozen=True)
class Account:
    id: UUID
    email: str | None  # None: made by an OpenID provider that did not vouch for an address
    created_at: datetime
    mfa_enabled: bool = False
    sign_in_methods: tuple[str, ...] = ("password",)


@dataclass(frozen=True)
class Agent:
    id: UUID
    name: str


class EventType(StrEnum):
    """Audit event types. The first group is what an account holder sees."""

    ISSUED = "issued"
    REVOKED = "revoked"
    VERIFIED = "verified"
    VERIFY_FAILED = "verify_failed"
    LOCKED = "locked"
    AGENT_CREATED = "agent_created"
    AGENT_REVOKED = "agent_revoked"
    # Two-factor sign-in.
    MFA_ENABLED = "mfa_enabled"
    MFA_DISABLED = "mfa_disabled"
    RECOVERY_CODE_USED = "recovery_code_used"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    MFA_FAILED = "mfa_failed"  # a wrong second-factor code (reason: sign_in or disable)
    MFA_LOCKED = "mfa_locked"  # too many wrong codes: second-factor sign-in refused a while


# What an account holder sees of the audit log (the events list on the account page).
AccountVisibleEventType = Literal[
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
ACCOUNT_VISIBLE_EVENTS: tuple[EventType, ...] = tuple(
    EventType(name) for name in get_args(AccountVisibleEventType)
)


@dataclass(frozen=True)
class AuditEvent:
    type: EventType
    account_id: UUID | None = None
    agent: Agent | None = None
    reason: str | None = None


@dataclass(frozen=True)
class AccountEvent:
    type: str
    at: datetime
    agent: str | None
