"""An agent's verification of a caller's PIN against the account being discussed."""

from __future__ import annotations

from dataclasses import dataclass

from service.accounts import AccountService, normalize_email
from service.limits import RateLimiter
from service.models import Agent
from service.pins import PinService, Verification


@dataclass(frozen=True)
class CheckedAddress:
    """A verification's outcome and the address it checked, as the service spells it."""

    verification: Verification
    email: str


class VerificationService:
    def __init__(self, limits: RateLimiter, accounts: AccountService, pins: PinService) -> None:
        self._limits = limits
        self._accounts = accounts
        self._pins = pins

    async def verify_pin(self, agent: Agent, email: str, pin: str) -> CheckedAddress:
        """The agent's limit, then the account by email, then the account's limit and its PIN
        in one script (`PinService.check`). Limits come first, so a refused request
        (`RateLimited`) is not a guess; every outcome is audited before it is answered."""
        await self._limits.verification_by_agent(agent.id)
        address = normalize_email(email)  # once: the lookup, the limit and the answer use it
        account_id = await self._accounts.id_by_email(address)
        verification = await self._pins.check(account_id, address, pin, agent)
        return CheckedAddress(verification, address)
