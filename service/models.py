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
    """Whoever verifies PINs: an API key of tooling, or a staff member signed in."""

    id: UUID
    name: str  # what the customer's events show
    # The audit log's actor: a staff member's email; None for an API key (`key:<name>`).
    staff_email: str | None = None

    @property
    def actor(self) -> str:
        return self.staff_email if self.staff_email is not None else f"key:{self.name}"


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
    # Administration (actor: the staff member, or `cli`).
    STAFF_ADDED = "staff_added"
    STAFF_ROLE_CHANGED = "staff_role_changed"
    STAFF_DISABLED = "staff_disabled"
    STAFF_ENABLED = "staff_enabled"
    STAFF_SIGNED_IN = "staff_signed_in"
    STAFF_SETUP_REISSUED = "staff_setup_reissued"
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    ACCOUNT_UNLOCKED = "account_unlocked"
    # Against fake support calls.
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMATION_APPROVED = "confirmation_approved"
    CONFIRMATION_DENIED = "confirmation_denied"  # reason: wrong_number, reported, locked
    REPORTED = "reported"  # the customer reported a call or a check as not theirs
    # Self-service.
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 (an event's name)
    PASSWORD_RESET_REQUESTED = "password_reset_requested"  # noqa: S105
    PASSWORD_RESET = "password_reset"  # noqa: S105
    PASSKEY_ADDED = "passkey_added"
    PASSKEY_REMOVED = "passkey_removed"
    ACCOUNT_DELETED = "account_deleted"


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
    "confirmation_requested",
    "confirmation_approved",
    "confirmation_denied",
    "reported",
    "password_changed",
    "password_reset",
    "passkey_added",
    "passkey_removed",
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
    # Who acted when not `agent` (an administrator's email, or `cli`).
    actor: str | None = None
    case_ref: str | None = None
    # What an administrative action was done to (a staff email, a key's name, an address).
    target: str | None = None
    # Chosen by the caller when something else must name the row (a reset link does).
    id: UUID | None = None


@dataclass(frozen=True)
class AccountEvent:
    type: str
    at: datetime
    agent: str | None
    case_ref: str | None = None
