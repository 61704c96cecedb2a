"""Rate limits shared by every process and instance: sliding-window logs in Redis.

Each limit is a setting in the `limits` notation (`10/minute`, `10 per 10 minutes`), parsed by
the `limits` library. The counting is one Lua script per hit on the service's own Redis client
(one connection pool, and cluster-safe: a script touches exactly one key). A sliding log is
exact: never more than `amount` accepted hits in any window of `expiry` seconds, which is what
the brute-force arithmetic in the README relies on. A refused hit is not recorded, so a client
that keeps hammering is not locked out for longer than the window.

Subjects (an email, an address) are keyed digests in the Redis key, never clear text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

from limits import RateLimitItem, parse

from service.accounts import normalize_email
from service.errors import RateLimited
from service.keys import keyed_digest
from service.redis_store import RedisStore

# KEYS: the log (a sorted set of hit times in ms). ARGV: amount, window ms, unique member.
# Returns {1, remaining} when the hit is accepted, {0, ms until a slot frees} when refused.
# Redis's clock (TIME) is the one clock every instance agrees on.
_HIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local amount = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= amount then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = window
  if oldest[2] then wait = tonumber(oldest[2]) + window - now_ms end
  return {0, wait}
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, amount - count - 1}
"""


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


class RateLimiter:
    """The service's limits, one method per flow; each raises `RateLimited` when over."""

    def __init__(
        self,
        redis: RedisStore,
        digest_key: bytes,
        *,
        sign_in_per_account: Limit,
        sign_in_per_address: Limit,
        account_create_per_address: Limit,
        pin_issue_per_account: Limit,
        verify_per_agent: Limit,
        verify_per_account: Limit,
    ) -> None:
        self._redis = redis
        self._digest_key = digest_key
        self.sign_in_per_account = sign_in_per_account
        self.sign_in_per_address = sign_in_per_address
        self.account_create_per_address = account_create_per_address
        self.pin_issue_per_account = pin_issue_per_account
        self.verify_per_agent = verify_per_agent
        self.verify_per_account = verify_per_account
        self._hit_script = redis.client.register_script(_HIT)

    def _subject(self, kind: str, value: str) -> str:
        return keyed_digest(self._digest_key, kind, value)[:16].hex()

    async def hit(self, limit: Limit, subject: str) -> None:
        """Count one request against `limit` for `subject`, or raise `RateLimited`."""
        key = self._redis.keys.rate_limit(limit.name, subject)
        member = secrets.token_hex(8)
        async with self._redis.guard():
            accepted, value = await self._hit_script(
                keys=[key], args=[limit.amount, limit.window_seconds * 1000, member]
            )
        if not int(accepted):
            # Round up: a client that waits Retry-After seconds is let through.
            raise RateLimited(retry_after=-(-int(value) // 1000))

    async def sign_in(self, *, address: str, email: str) -> None:
        # Keyed by the email as typed (normalized), known or not: the same answer either way.
        await self.hit(self.sign_in_per_address, self._subject("address", address))
        await self.hit(self.sign_in_per_account, self._subject("email", normalize_email(email)))

    async def account_create(self, *, address: str) -> None:
        await self.hit(self.account_create_per_address, self._subject("address", address))

    async def pin_issue(self, *, account_id: UUID) -> None:
        await self.hit(self.pin_issue_per_account, str(account_id))

    async def verification(self, *, agent_id: UUID, email: str) -> None:
        # Per account by email, so an unknown email is limited exactly like a known one.
        await self.hit(self.verify_per_agent, str(agent_id))
        await self.hit(self.verify_per_account, self._subject("email", normalize_email(email)))
