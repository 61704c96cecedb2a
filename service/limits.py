"""Rate limits shared by every process and instance: sliding-window logs in Redis.

Each limit is a setting in the `limits` notation (`10/minute`, `10 per 10 minutes`), parsed by
the `limits` library. The counting is one Lua script per hit on the service's own Redis client
(one connection pool, and cluster-safe: a script touches exactly one key), except that PIN
issuance counts its limit inside the issue script (the log lives in the account's slot), and a
verification counts its two hits in one round trip with what comes next (on a single node in
the PIN service's verification script, with the PIN check; on a cluster in one pipeline, with
the read of the email's cache entry). A sliding log is exact: never more than `amount`
accepted hits in any window of `expiry` seconds, which is what the brute-force arithmetic in
the README relies on. A refused hit is not recorded, so a client that keeps hammering is not
locked out for longer than the window.

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

from service.accounts import normalize_email
from service.errors import RateLimited
from service.keys import keyed_digest
from service.redis_store import RedisStore, account_tag

# One hit on one sliding log (a sorted set of hit times in ms): amount, window ms, unique member.
# Returns {1, remaining} when the hit is accepted, {0, ms until a slot frees} when refused.
# Redis's clock (TIME) is the one clock every instance agrees on; a script that counts two hits
# reads it once (a script runs atomically: both hits happen at the same moment anyway). A Lua
# function, so the scripts of other steps (PIN issuance, verification) can count their limits
# in the same atomic step.
HIT_FUNCTION = """
local clock_ms
local function rate_limit_hit(key, amount, window, member)
  if not clock_ms then
    local now = redis.call('TIME')
    clock_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  end
  local now_ms = clock_ms
  amount = tonumber(amount)
  window = tonumber(window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window)
  local count = redis.call('ZCARD', key)
  if count >= amount then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local wait = window
    if oldest[2] then wait = tonumber(oldest[2]) + window - now_ms end
    return {0, wait}
  end
  redis.call('ZADD', key, now_ms, member)
  redis.call('PEXPIRE', key, window)
  return {1, amount - count - 1}
end
"""

# KEYS: the log. ARGV: amount, window ms, unique member.
_HIT = HIT_FUNCTION + "return rate_limit_hit(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\n"

# A verification's two hits and the caller's next read, in one step (a single Redis node
# only: the keys live in different cluster slots). KEYS: the agent's log, the account's log,
# optionally a key to GET. ARGV: each hit's amount, window ms, unique member.
# Returns {agent ok, agent value, account ok, account value, what GET read (or false)}; the
# account's limit is not asked when the agent's refuses.
_VERIFICATION_HITS = (
    HIT_FUNCTION
    + """
local agent = rate_limit_hit(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if agent[1] == 0 then
  return {agent[1], agent[2], 1, 0, false}
end
local account = rate_limit_hit(KEYS[2], ARGV[4], ARGV[5], ARGV[6])
local fetched = false
if KEYS[3] then fetched = redis.call('GET', KEYS[3]) end
return {agent[1], agent[2], account[1], account[2], fetched}
"""
)


# A hit's member in its sorted-set log must be unique among every process's hits in the
# window (a repeated member would replace the earlier hit, not add one). A random prefix
# drawn once per process and a counter: one draw of randomness per process, not one (a
# system call) per hit. A forked child draws its own prefix.
class _MemberSeries:
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
        self._hit_script = redis.script(_HIT)
        self._verification_script = redis.script(_VERIFICATION_HITS)

    def _subject(self, kind: str, value: str) -> str:
        return keyed_digest(self._digest_key, kind, value)[:16].hex()

    def _hit_of(self, limit: Limit, subject: str) -> LimitHit:
        key = self._redis.keys.rate_limit(limit.name, subject)
        return LimitHit(key, (limit.amount, limit.window_seconds * 1000, _members.next()))

    async def hit(self, limit: Limit, subject: str) -> None:
        """Count one request against `limit` for `subject`, or raise `RateLimited`."""
        hit = self._hit_of(limit, subject)
        async with self._redis.guard():
            reply = await self._hit_script(keys=[hit.key], args=list(hit.args))
        check_hit(reply)

    async def sign_in(self, *, address: str, email: str) -> None:
        # Keyed by the email as typed (normalized), known or not: the same answer either way.
        await self.hit(self.sign_in_per_address, self._subject("address", address))
        await self.hit(self.sign_in_per_account, self._subject("email", normalize_email(email)))

    async def account_create(self, *, address: str) -> None:
        await self.hit(self.account_create_per_address, self._subject("address", address))

    def pin_issue_hit(self, account_id: UUID) -> LimitHit:
        """The issuance limit's hit, for the PIN service to count inside its issue script: the
        log is keyed by the account's tag, so it shares the PIN's cluster slot."""
        return self._hit_of(self.pin_issue_per_account, account_tag(account_id))

    def verification_hits(self, *, agent_id: UUID, email: str) -> tuple[LimitHit, LimitHit]:
        """A verification's two hits: the agent's limit, then the account's (by email, so an
        unknown email is limited exactly like a known one). Counted by `verification`, or by
        the PIN service's one-step verification script on a single node."""
        return (
            self._hit_of(self.verify_per_agent, str(agent_id)),
            self._hit_of(self.verify_per_account, self._subject("email", normalize_email(email))),
        )

    async def verification(
        self, hits: tuple[LimitHit, LimitHit], *, fetch: str | None = None
    ) -> bytes | None:
        """Count a verification's `hits` (`verification_hits`), or raise `RateLimited`; the
        account's limit is not asked when the agent's refuses. Both hits, and a GET of
        `fetch` when given (the caller's next read), go in one round trip: one script on a
        single Redis node, a pipeline on a cluster (where the keys live in different slots).
        Returns what that GET read."""
        if self._redis.is_cluster:
            agent_reply, account_reply, fetched = await self._verification_on_cluster(hits, fetch)
        else:
            keys = [hits[0].key, hits[1].key] + ([fetch] if fetch is not None else [])
            async with self._redis.guard(scripts_only=True):
                reply = await self._verification_script(
                    keys=keys, args=[*hits[0].args, *hits[1].args]
                )
            agent_reply, account_reply, fetched = reply[0:2], reply[2:4], reply[4]
        check_hit(agent_reply)
        check_hit(account_reply)
        return fetched if isinstance(fetched, bytes) else None

    async def _verification_on_cluster(
        self, hits: tuple[LimitHit, LimitHit], fetch: str | None
    ) -> tuple[Any, Any, Any]:
        async with self._redis.guard():
            replies = await self._pipelined_hits(hits, fetch)
            agent_reply, account_reply = replies[0], replies[1]
            if not int(agent_reply[0]) and int(account_reply[0]):
                # Refused by the agent's limit: as if the account's had not been asked (one
                # after the other, it would not have been), so take that hit back.
                await self._redis.client.zrem(hits[1].key, hits[1].args[2])
        return agent_reply, account_reply, replies[2] if fetch is not None else None

    async def _pipelined_hits(
        self, hits: tuple[LimitHit, LimitHit], fetch: str | None
    ) -> list[Any]:
        """The hits, then a GET of `fetch` if given, in one round trip on a cluster. No
        transaction: the keys live in different slots, and each hit is atomic on its own.
        EVAL with the script's text: a cluster pipeline refuses EVALSHA (Redis still caches
        the compiled script by its digest), and a pipeline holding script objects would ask
        SCRIPT EXISTS first, a round trip more."""
        async with self._redis.client.pipeline(transaction=False) as pipe:
            for hit in hits:
                pipe.eval(_HIT, 1, hit.key, *hit.args)
            if fetch is not None:
                pipe.get(fetch)
            return list(await pipe.execute())


class LimitHit(NamedTuple):
    """One hit, ready to send: the log's key and the hit script's arguments. (A tuple: two
    are made per verification, and a frozen dataclass takes three times as long to make.)"""

    key: str
    args: tuple[int, int, str]  # amount, window ms, unique member


def check_hit(reply: Any) -> None:
    """Raise `RateLimited` for a refused hit's reply `{0, ms until a slot frees}`."""
    if not int(reply[0]):
        raise refused(int(reply[1]))


def refused(wait_ms: int) -> RateLimited:
    """The error for a refused hit whose log frees a slot in `wait_ms`."""
    # Round up: a client that waits Retry-After seconds is let through.
    return RateLimited(retry_after=-(-wait_ms // 1000))
