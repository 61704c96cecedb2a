"""An agent's verification of a caller's PIN: the rate limits, the account by email, the PIN.

On a single Redis node the whole of it is one Redis step when the email's account is cached
(as signing in leaves it): `PinService.verify_by_cached_email`. When it is not, that step
has counted the limits, and the account is looked up in PostgreSQL before the PIN is
checked (`PinService.verify`). On a cluster it is always two steps: the limits with a read of
the cache entry (`RateLimiter.verification`), then the PIN. Either way the limits are counted
first, so a refused request is not a guess and touches no PIN or failure counter, and every
outcome is audited before it is answered."""

from __future__ import annotations

from service.accounts import AccountService
from service.limits import RateLimiter
from service.models import Agent
from service.pins import PinService, Verification


class VerificationService:
    def __init__(self, limits: RateLimiter, accounts: AccountService, pins: PinService) -> None:
        self._limits = limits
        self._accounts = accounts
        self._pins = pins

    async def verify(self, agent: Agent, email: str, pin: str) -> Verification:
        """Check `pin` against the account of `email`; `RateLimited` when over a limit."""
        hits = self._limits.verification_hits(agent_id=agent.id, email=email)
        cache_key = self._accounts.email_cache_key(email)
        cached: bytes | None
        if cache_key is not None and self._pins.verifies_in_one_step:
            done = await self._pins.verify_by_cached_email(cache_key, hits, pin, agent)
            if done is not None:
                return done
            cached = None  # counted, and no account cached for the email: look it up
        else:
            cached = await self._limits.verification(hits, fetch=cache_key)
        account_id = await self._accounts.id_by_email(email, cached, cache_key=cache_key)
        return await self._pins.verify(account_id, pin, agent)
