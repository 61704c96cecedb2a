"""Rate limits shared by every process and instance: sliding-window logs in Redis.

Each limit is a setting in the `limits` notation (`10/minute`, `10 per 10 minutes`), parsed by
the `limits` library. A hit is counted by `service/lua/rate_limit_hit.lua`; PIN issuance and
verification count theirs inside their own scripts (the log lives in the account's slot), so
each costs no extra round trip. A sliding log is exact: never more than `amount` accepted hits
in any window, which is what the brute-force arithmetic in SECURITY.md relies on.

Subjects (an email, an address) are keyed digests in the Redis key, never clear text.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from limits import RateLimitItem, parse

from service.errors import RateLimited
from service.keys import keyed_digest
from service.redis_store import RedisStore, account_tag

# Consecutive-failure counters (PIN verification, second-factor codes) forget after a day
# without a failure.
FAILURE_COUNTER_TTL_MS = 24 * 3600 * 1000


class _MemberSeries:
    """Unique members for the logs' sorted sets (a repeated member would replace an earlier
    hit): a random prefix per process and a counter. A forked child draws its own prefix."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = secrets.token_hex(5)
        self._count = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


_members = _MemberSeries()
os.register_at_fork(after_in_child=_members.reset)


def parse_limit(value: str) -> RateLimitItem:
    """One limit in the `limits` notation; refuses lists (`a;b`) and empty limits."""
    if ";" in value or "," in value:
        raise ValueError("one limit per setting, e.g. '10/minute'")
    item = parse(value)
    if item.amount < 1:
        raise ValueError("a limit allows at least one request")
    return item


@dataclass(frozen=True)
class Limit:
    name: str
    amount: int
    window_seconds: int

    @classmethod
    def from_setting(cls, name: str, value: str) -> Limit:
        item = parse_limit(value)
        return cls(name, item.amount, item.get_expiry())


class LimitHit(NamedTuple):
    """One hit, ready for a script: the log's key and the hit's arguments."""

    key: str
    args: tuple[int, int, str]  # amount, window ms, unique member


@dataclass(frozen=True)
class SignInAttempt:
    """An admitted password attempt: counted as a failure until `RateLimiter.signed_in`."""

    counter: str  # its subject's consecutive-failure counter
    also_clear: str | None  # a device's sign-in also clears its email's unknown-client count


class RateLimiter:
    """The service's limits, one method per flow; each raises `RateLimited` when over."""

    def __init__(
        self,
        redis: RedisStore,
        digest_key: bytes,
        *,
        sign_in_per_account: Limit,
        sign_in_per_address: Limit,
        sign_in_per_device: Limit,
        account_create_per_address: Limit,
        pin_issue_per_account: Limit,
        verify_per_agent: Limit,
        verify_per_account: Limit,
        confirm_per_agent: Limit,
        confirm_per_account: Limit,
        sign_in_max_failures: int = 100,
        sign_in_lock_seconds: int = 3600,
    ) -> None:
        self._redis = redis
        self._digest_key = digest_key
        self.sign_in_per_account = sign_in_per_account
        self.sign_in_per_address = sign_in_per_address
        self.sign_in_per_device = sign_in_per_device
        self.sign_in_max_failures = sign_in_max_failures
        self.sign_in_lock_ms = sign_in_lock_seconds * 1000
        self.account_create_per_address = account_create_per_address
        self.pin_issue_per_account = pin_issue_per_account
        self.verify_per_agent = verify_per_agent
        self.verify_per_account = verify_per_account
        self.confirm_per_agent = confirm_per_agent
        self.confirm_per_account = confirm_per_account
        self._hit_script = redis.script("rate_limit_hit")
        self._sign_in_script = redis.script("sign_in_attempt")

    def subject(self, kind: str, value: str) -> str:
        """A keyed digest of `value` for key names (no address or email in Redis)."""
        return keyed_digest(self._digest_key, kind, value)[:16].hex()

    def _hit_of(self, limit: Limit, subject: str) -> LimitHit:
        key = self._redis.keys.rate_limit(limit.name, subject)
        return LimitHit(key, (limit.amount, limit.window_seconds * 1000, _members.next()))

    async def hit(self, limit: Limit, subject: str) -> None:
        """Count one request against `limit` for `subject`, or raise `RateLimited`."""
        hit = self._hit_of(limit, subject)
        async with self._redis.guard():
            reply = await self._hit_script(keys=[hit.key], args=hit.args)
        check_hit(reply)

    async def sign_in(self, *, address: str, email: str, device: str | None) -> SignInAttempt:
        """Admit a password attempt for `email` (normalized), or raise `RateLimited`.

        With the device id of a valid device cookie for the email, the attempt is limited
        per device. Otherwise it is limited per address and, with every other client that
        has no such cookie, per email (known or not: the same answer either way), and
        refused once the email has `sign_in_max_failures` consecutive failures from them."""
        if device is not None:
            subject = self.subject("device", device)
            limit = self.sign_in_per_device
            also_clear: str | None = self._redis.keys.sign_in_failures(self.subject("email", email))
        else:
            await self.hit(self.sign_in_per_address, self.subject("address", address))
            subject = self.subject("email", email)
            limit = self.sign_in_per_account
            also_clear = None
        hit = self._hit_of(limit, subject)
        counter = self._redis.keys.sign_in_failures(subject)
        async with self._redis.guard():
            reply = await self._sign_in_script(
                keys=[counter, hit.key],
                args=[self.sign_in_max_failures, self.sign_in_lock_ms, *hit.args],
            )
        check_hit(reply)
        return SignInAttempt(counter, also_clear)

    async def signed_in(self, attempt: SignInAttempt) -> None:
        """The attempt's password was right: its failures are no longer consecutive."""
        keys = [attempt.counter, *([attempt.also_clear] if attempt.also_clear else [])]
        # One DEL per key (they live in different cluster slots), in one round trip.
        async with self._redis.guard(), self._redis.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.delete(key)
            await pipe.execute()

    async def anonymous(self, *, address: str) -> None:
        """A request that anyone may make and that costs the service (a passkey challenge):
        counted per address with the sign-ins."""
        await self.hit(self.sign_in_per_address, self.subject("address", address))

    async def account_create(self, *, address: str) -> None:
        await self.hit(self.account_create_per_address, self.subject("address", address))

    async def verification_by_agent(self, agent_id: UUID) -> None:
        await self.hit(self.verify_per_agent, str(agent_id))

    async def confirmation_by_agent(self, agent_id: UUID) -> None:
        await self.hit(self.confirm_per_agent, str(agent_id))

    async def confirmation_for(self, subject: str) -> None:
        """The per-account limit of confirmation requests (a `verification_subject`)."""
        await self.hit(self.confirm_per_account, subject)

    def pin_issue_hit(self, account_id: UUID) -> LimitHit:
        """The issuance limit's hit, counted inside the issue script (same slot as the PIN)."""
        return self._hit_of(self.pin_issue_per_account, account_tag(account_id))

    def verification_subject(self, account_id: UUID | None, email: str) -> str:
        """Whose verification state a check counts on: the account's tag, or for an address
        with no account the (normalized) email's digest, so that it is counted exactly like
        a known one."""
        if account_id is not None:
            return account_tag(account_id)
        return self.subject("email", email)

    def verification_hit(self, subject: str) -> LimitHit:
        """The per-account verification limit's hit for a `verification_subject`, counted
        inside the verify script (in the subject's slot)."""
        return self._hit_of(self.verify_per_account, subject)


def check_hit(reply: Any) -> None:
    """Raise `RateLimited` for a refused hit's reply `{0, ms until a slot frees}`."""
    if not int(reply[0]):
        raise refused(int(reply[1]))


def refused(wait_ms: int) -> RateLimited:
    """The error for a refused hit whose log frees a slot in `wait_ms`."""
    # Rounded up: a client that waits Retry-After seconds is let through.
    return RateLimited(retry_after=-(-wait_ms // 1000))
