"""An agent's verification of a caller's PIN against the account being discussed."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from service.accounts import AccountService, normalize_email, storable_text
from service.audit import AuditLog
from service.limits import RateLimiter
from service.models import Agent, AuditEvent, EventType
from service.oidc import LinkedAccounts
from service.pins import PinService, Verification


@dataclass(frozen=True)
class CheckedAddress:
    """A verification's outcome and the address it checked, as the service spells it."""

    verification: Verification
    email: str | None
    subject: str | None = None


class VerificationService:
    def __init__(
        self,
        limits: RateLimiter,
        accounts: AccountService,
        pins: PinService,
        audit: AuditLog,
        linked: LinkedAccounts | None = None,
    ) -> None:
        self._audit = audit
        self._limits = limits
        self._accounts = accounts
        self._pins = pins
        self._linked = linked

    async def verify_pin(
        self, agent: Agent, email: str, pin: str, case_ref: str | None = None
    ) -> CheckedAddress:
        """The agent's limit, then the account by email, then the account's limit and its PIN
        in one script (`PinService.check`). Limits come first, so a refused request
        (`RateLimited`) is not a guess; every outcome is audited before it is answered."""
        await self._limits.verification_by_agent(agent.id)
        address = normalize_email(email)  # once: the lookup, the limit and the answer use it
        account_id = await self._accounts.id_by_email(address)
        verification = await self._pins.check(account_id, address, pin, agent, case_ref)
        return CheckedAddress(verification, address)

    async def verify_pin_by_subject(
        self, agent: Agent, subject: str, pin: str, case_ref: str | None = None
    ) -> CheckedAddress:
        """The same check for the account linked to the provider's `subject`: the same
        steps and answers whether or not the subject exists, or OIDC is configured."""
        await self._limits.verification_by_agent(agent.id)
        account_id = None
        if self._linked is not None and storable_text(subject):
            account_id = await self._linked.account_by_subject(subject)
        # Keyed apart from any email: an unknown subject counts failures of its own.
        verification = await self._pins.check(account_id, f"sub:{subject}", pin, agent, case_ref)
        return CheckedAddress(verification, None, subject)

    async def unlock(self, email: str, *, actor: str) -> None:
        """Clear the PIN lock and failure counts of the account with `email` (the same steps
        for an address with none), and audit it."""
        address = normalize_email(email)
        account_id = await self._accounts.id_by_email(address)
        await self._pins.unlock(self._limits.verification_subject(account_id, address))
        await self._audit.record(
            AuditEvent(EventType.ACCOUNT_UNLOCKED, account_id, actor=actor, target=address)
        )

    async def account_of(
        self, *, email: str | None = None, subject: str | None = None
    ) -> tuple[UUID | None, str, str]:
        """The account under discussion by email or by the provider's subject: its id (None
        for none), the subject its counters live under, and the name as checked."""
        if subject is not None:
            account_id = None
            if self._linked is not None and storable_text(subject):
                account_id = await self._linked.account_by_subject(subject)
            name = f"sub:{subject}"
        else:
            name = normalize_email(email or "")
            account_id = await self._accounts.id_by_email(name)
        return account_id, self._limits.verification_subject(account_id, name), name
