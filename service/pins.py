"""Support PINs: issue (replacing the previous one), status, revoke and agent verification.

State per account, all under the hash tag `{<account tag>}` (one Redis Cluster slot; the tag is
the account id in 22 base64url characters, see `redis_store.account_tag`):
- `pin:{id}`      hash {h: the PIN's digest, e: expiry in epoch ms, a: failed tries}, with the
                  PIN's TTL, so a new PIN overwrites the old one and expiry is Redis's.
- `pinfail:{id}`  consecutive failed verifications of the account; a new PIN does not reset it.
- `pinlock:{id}`  present while verifications for the account are refused.

The PIN's digest is keyed and bound to its account: HMAC-SHA256 of the PIN under the PIN key
(derived from SECRET_KEY), then SHA-1 over the account's tag and that HMAC, of which the first
16 hex digits (64 bits) are kept. Without the key nothing in Redis reveals a PIN, and a digest
copied to another account's key does not verify there. The binding comes second, and uses
SHA-1, so that a Lua script can do it (SHA-1, in hex, is the one hash Redis offers scripts): on
a single node a verification finds the account by email and checks the PIN in one script
(`verify_by_cached_email`), which learns the account only as it runs. What the binding needs of
SHA-1 is that no preimage can be found for an input holding a secret 256-bit HMAC; collisions
play no part. 64 bits are kept in hex, not 128 in binary, because Lua turns hex into bytes
only a call per byte (that made the verification script a sixth dearer, counted in
instructions): a wrong PIN matches a 64-bit digest once in 2^64 tries, against once in 10^6
for guessing a 6-digit PIN, and without the PIN key no digest can be tested offline at all.

Every outcome is committed to the audit log before it is answered. Redis changes come first
(they are atomic scripts) and are undone if Postgres does not take the audit row, so no PIN
is ever shown, consumed or refused without its row.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from service import metrics
from service.audit import AuditLog
from service.errors import Unauthenticated, Unavailable
from service.keys import keyed_digest
from service.limits import HIT_FUNCTION, LimitHit, check_hit, refused
from service.models import Agent, AuditEvent, EventType
from service.redis_store import RedisStore, account_id_from_tag, account_tag

log = logging.getLogger(__name__)

# Equal-length strings compared without an early exit.
_CONSTANT_TIME_EQUAL = """
local function equal(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))
  end
  return diff == 0
end
"""

# KEYS: pin, the account's issuance-limit log, optionally the caller's session (all in one
# slot: the account's tag).
# ARGV: digest, expiry ms, ttl ms, the limit's amount, window ms, unique member, then (with
# a session key) the account id the session must hold.
# The session first, then the limit, in the same atomic step (one round trip instead of
# three): no session returns {-1} and changes nothing; a refused hit returns
# {0, ms until a slot frees} and changes nothing else; else {1, the replaced PIN's snapshot}.
_ISSUE = (
    HIT_FUNCTION
    + """
if KEYS[3] and redis.call('GET', KEYS[3]) ~= ARGV[7] then
  return {-1}
end
local hit = rate_limit_hit(KEYS[2], ARGV[4], ARGV[5], ARGV[6])
if hit[1] == 0 then
  return hit
end
local old = redis.call('HMGET', KEYS[1], 'h', 'e', 'a')
local pttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, old[1], old[2], old[3], pttl}
"""
)

# KEYS: pin. Deletes the PIN and returns its snapshot.
_REVOKE = """
local old = redis.call('HMGET', KEYS[1], 'h', 'e', 'a')
local pttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
return {old[1], old[2], old[3], pttl}
"""

# The stored digest of a PIN (see the module docstring) from the account's tag and the PIN's
# HMAC; `PinService._digest` is the same in Python.
_BOUND_DIGEST = """
local function bound_digest(tag, secret)
  return string.sub(redis.sha1hex(tag .. secret), 1, 16)
end
"""

# One verification of an account's PIN: the keys of its PIN, failure counter and lock, the
# candidate's `bound_digest`, max tries per PIN, max account failures, lock ms, failures ttl ms.
# Returns {outcome, pin h, pin e, pin a, pin pttl, failures, failures pttl} (state before).
_VERIFY_FUNCTION = (
    _CONSTANT_TIME_EQUAL
    + _BOUND_DIGEST
    + """
local function verify_pin(pin_key, fail_key, lock_key, candidate, max_tries, max_failures,
                          lock_ms, failures_ttl)
  local pin = redis.call('HMGET', pin_key, 'h', 'e', 'a')
  local pttl = redis.call('PTTL', pin_key)
  local fails = redis.call('GET', fail_key)
  local fails_pttl = redis.call('PTTL', fail_key)
  local function answer(outcome)
    return {outcome, pin[1], pin[2], pin[3], pttl, fails, fails_pttl}
  end
  if redis.call('EXISTS', lock_key) == 1 then
    return answer('locked_out')
  end
  if pin[1] and equal(pin[1], candidate) then
    redis.call('DEL', pin_key, fail_key)
    return answer('valid')
  end
  if pin[1] then
    if redis.call('HINCRBY', pin_key, 'a', 1) >= tonumber(max_tries) then
      redis.call('DEL', pin_key)
    end
  end
  local failures = redis.call('INCR', fail_key)
  redis.call('PEXPIRE', fail_key, failures_ttl)
  if failures >= tonumber(max_failures) then
    redis.call('DEL', pin_key, fail_key)
    redis.call('SET', lock_key, '1', 'PX', lock_ms)
    return answer('locked')
  end
  if pin[1] then
    return answer('wrong_pin')
  end
  return answer('no_pin')
end
"""
)

# KEYS: pin, account failures, account lock.
# ARGV: the account's tag, the PIN's HMAC, max tries per PIN, max account failures, lock ms,
# failures ttl ms. Returns `verify_pin`'s answer.
_VERIFY = (
    _VERIFY_FUNCTION
    + """
return verify_pin(KEYS[1], KEYS[2], KEYS[3], bound_digest(ARGV[1], ARGV[2]), ARGV[3], ARGV[4],
                  ARGV[5], ARGV[6])
"""
)

# A whole verification in one step, on a single Redis node: the agent's and the account's
# rate-limit hits, the email's cache entry (the account's tag), and the PIN check. The PIN's
# keys are named by the script from the tag it reads, so they are not among KEYS: a single node
# allows that, a cluster would not (they may live in another slot), and there the service
# takes the two-step way (`RateLimiter.verification`, then `_VERIFY`).
# KEYS: the agent's limit log, the account's limit log (by email), the email's cache entry.
# ARGV: each hit's amount, window ms and unique member; the PIN's HMAC, max tries per PIN,
# max account failures, lock ms, failures ttl ms; the PIN-state key prefixes (`Keys`).
# Returns {'limited', ms until a slot frees} (the account's limit not asked when the agent's
# refuses), {'unknown'} (cached as no account), {'miss'} (no entry, or not one the service
# writes: the caller looks the account up and verifies in two steps), or `verify_pin`'s
# answer followed by the account's tag.
_VERIFY_BY_CACHED_EMAIL = (
    HIT_FUNCTION
    + _VERIFY_FUNCTION
    + """
local agent = rate_limit_hit(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if agent[1] == 0 then
  return {'limited', agent[2]}
end
local account = rate_limit_hit(KEYS[2], ARGV[4], ARGV[5], ARGV[6])
if account[1] == 0 then
  return {'limited', account[2]}
end
local tag = redis.call('GET', KEYS[3])
if tag == '' then
  return {'unknown'}
end
-- An account tag in its one spelling: 22 base64url characters encoding 16 bytes.
if (not tag) or #tag ~= 22 or not string.find(tag, '^[%w_%-]+[AQgw]$') then
  return {'miss'}
end
local slot = '{' .. tag .. '}'
local result = verify_pin(ARGV[12] .. slot, ARGV[13] .. slot, ARGV[14] .. slot,
                          bound_digest(tag, ARGV[7]), ARGV[8], ARGV[9], ARGV[10], ARGV[11])
result[8] = tag
return result
"""
)

# Undo one of the scripts above after Postgres refused its audit row.
# KEYS: pin, account failures, account lock.
# ARGV: digest we left in place ('' if none), snapshot h, e, a, pttl,
#       restore failures ('1'/'0'), failures, failures pttl, remove lock ('1'/'0').
_RESTORE = """
local current = redis.call('HGET', KEYS[1], 'h')
if (not current) or current == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' and tonumber(ARGV[5]) > 0 then
    redis.call('HSET', KEYS[1], 'h', ARGV[2], 'e', ARGV[3])
    if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'a', ARGV[4]) end
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  end
end
if ARGV[6] == '1' then
  if ARGV[7] ~= '' and tonumber(ARGV[8]) > 0 then
    redis.call('SET', KEYS[2], ARGV[7], 'PX', ARGV[8])
  else
    redis.call('DEL', KEYS[2])
  end
end
if ARGV[9] == '1' then redis.call('DEL', KEYS[3]) end
return 1
"""

# Unknown accounts still cost one script round trip, so timing does not tell them apart.
_PROBE = "return redis.call('HMGET', KEYS[1], 'h', 'e', 'a')"

FAILURE_COUNTER_TTL_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class IssuedPin:
    pin: str
    expires_at: datetime
    ttl_seconds: int


@dataclass(frozen=True)
class PinStatus:
    active: bool
    expires_at: datetime | None


@dataclass(frozen=True)
class Verification:
    valid: bool
    account_id: UUID | None
    verified_at: datetime | None


class _Snapshot(NamedTuple):
    digest: bytes | None
    expires_ms: bytes | None
    attempts: bytes | None
    pttl: int

    @classmethod
    def from_reply(cls, reply: list[Any]) -> _Snapshot:
        return cls(reply[0], reply[1], reply[2], int(reply[3]))

    def args(self) -> list[bytes | str | int]:
        return [self.digest or "", self.expires_ms or "", self.attempts or "", self.pttl]


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class PinService:
    def __init__(
        self,
        redis: RedisStore,
        audit: AuditLog,
        *,
        pin_key: bytes,
        length: int,
        ttl_seconds: int,
        max_attempts: int,
        account_max_failures: int,
        account_lock_seconds: int,
    ) -> None:
        self._redis = redis
        self._keys = redis.keys
        self._audit = audit
        self._pin_key = pin_key
        self.length = length
        self.ttl_seconds = ttl_seconds
        self.max_attempts = max_attempts
        self.account_max_failures = account_max_failures
        self.account_lock_seconds = account_lock_seconds
        self._issue = redis.script(_ISSUE)
        self._revoke = redis.script(_REVOKE)
        self._verify = redis.script(_VERIFY)
        self._verify_by_cached_email = (
            None if redis.is_cluster else redis.script(_VERIFY_BY_CACHED_EMAIL)
        )
        self._restore = redis.script(_RESTORE)
        self._probe = redis.script(_PROBE)
        # The script's arguments that never change, in the order it reads them.
        self._verify_limits = (
            self.max_attempts,
            self.account_max_failures,
            self.account_lock_seconds * 1000,
            FAILURE_COUNTER_TTL_MS,
        )

    def _secret(self, pin: str) -> bytes:
        """The PIN's HMAC under the PIN key: what a verification sends to Redis."""
        return keyed_digest(self._pin_key, pin)

    def _digest(self, account_id: UUID, pin: str) -> bytes:
        """The PIN's stored digest, bound to the account: the same digits are a different
        secret for another account. As `bound_digest` computes it in the scripts."""
        # S324: SHA-1 binds a secret HMAC to the account; no collision matters (module doc).
        bound = hashlib.sha1(account_tag(account_id).encode() + self._secret(pin))  # noqa: S324
        return bound.hexdigest()[:16].encode()

    @property
    def verifies_in_one_step(self) -> bool:
        """Whether `verify_by_cached_email` can be used (a single Redis node)."""
        return self._verify_by_cached_email is not None

    def _account_keys(self, account_id: UUID) -> list[str]:
        return self._keys.pin_state(account_id)

    def pin_key(self, account_id: UUID) -> str:
        return self._keys.pin(account_id)

    def stored_pin(self, account_id: UUID, pin: str, expires_ms: int) -> dict[str, bytes | int]:
        """The hash fields of an active PIN, exactly as the issue script stores them (the
        benchmark's bulk loader writes PINs with this, so the layout has one definition)."""
        return {"h": self._digest(account_id, pin), "e": expires_ms}

    def new_pin(self) -> str:
        return f"{secrets.randbelow(10**self.length):0{self.length}d}"

    async def issue(
        self, account_id: UUID, limit: LimitHit, *, session_key: str | None = None
    ) -> IssuedPin:
        """Make a new PIN; the previous one stops working in the same atomic step, which
        first checks the caller's session if `session_key` is given (`Unauthenticated` if
        it does not hold `account_id`), then counts `limit` (the account's issuance limit;
        `RateLimited` when over it)."""
        pin = self.new_pin()
        digest = self._digest(account_id, pin)
        expires_ms = int(time.time() * 1000) + self.ttl_seconds * 1000
        keys = self._account_keys(account_id)
        script_keys = [keys[0], limit.key]
        args: list[bytes | str | int] = [digest, expires_ms, self.ttl_seconds * 1000, *limit.args]
        if session_key is not None:
            script_keys.append(session_key)
            args.append(account_id.bytes)
        async with self._redis.guard(scripts_only=True):
            reply = await self._issue(keys=script_keys, args=args)
        if int(reply[0]) == -1:
            raise Unauthenticated()
        check_hit(reply)
        replaced = _Snapshot.from_reply(reply[1:])
        await self._record_or_restore(
            [AuditEvent(EventType.ISSUED, account_id)], keys, touched=digest, snapshot=replaced
        )
        metrics.PINS_ISSUED.inc()
        return IssuedPin(pin=pin, expires_at=_from_ms(expires_ms), ttl_seconds=self.ttl_seconds)

    async def status(self, account_id: UUID) -> PinStatus:
        async with self._redis.guard():
            expires_ms = await self._redis.client.hget(self._keys.pin(account_id), "e")
        if expires_ms is None:
            return PinStatus(active=False, expires_at=None)
        return PinStatus(active=True, expires_at=_from_ms(int(expires_ms)))

    async def revoke(self, account_id: UUID) -> None:
        keys = self._account_keys(account_id)
        async with self._redis.guard():
            reply = await self._revoke(keys=keys[:1])
        revoked = _Snapshot.from_reply(reply)
        if revoked.digest is None:
            return  # nothing was active: nothing happened, nothing to record
        await self._record_or_restore(
            [AuditEvent(EventType.REVOKED, account_id)],
            keys,
            touched=revoked.digest,
            snapshot=revoked,
        )

    async def verify(self, account_id: UUID | None, pin: str, agent: Agent) -> Verification:
        """Check `pin` against the account under discussion and consume it if right.

        Every way of being wrong gives the same answer."""
        if account_id is None:
            async with self._redis.guard(scripts_only=True):  # as a known account's
                await self._probe(keys=[self._keys.pin("unknown")])
            return await self._unknown_account(agent)
        tag = account_tag(account_id)
        keys = self._keys.pin_state_by_tag(tag)
        async with self._redis.guard(scripts_only=True):
            reply = await self._verify(
                keys=keys, args=[tag, self._secret(pin), *self._verify_limits]
            )
        return await self._conclude(account_id, keys, reply, agent)

    async def verify_by_cached_email(
        self, email_key: str, hits: tuple[LimitHit, LimitHit], pin: str, agent: Agent
    ) -> Verification | None:
        """A whole verification in one Redis step (single node only, see
        `verifies_in_one_step`): the agent's and the account's limit `hits` (`RateLimited`
        when over), the account id from the email's cache entry at `email_key`, and `verify`.
        None when the cache holds no entry for the email: the limits are counted, and the
        caller looks the account up and calls `verify`."""
        if self._verify_by_cached_email is None:
            raise RuntimeError("verification in one step needs a single Redis node")
        agent_hit, account_hit = hits
        async with self._redis.guard(scripts_only=True):
            reply = await self._verify_by_cached_email(
                keys=[agent_hit.key, account_hit.key, email_key],
                args=[
                    *agent_hit.args,
                    *account_hit.args,
                    self._secret(pin),
                    *self._verify_limits,
                    *self._keys.pin_state_prefixes,
                ],
            )
        status = reply[0]
        if status == b"limited":
            raise refused(int(reply[1]))
        if status == b"miss":
            return None
        if status == b"unknown":
            return await self._unknown_account(agent)
        tag = reply[7].decode()
        keys = self._keys.pin_state_by_tag(tag)
        return await self._conclude(account_id_from_tag(tag), keys, reply, agent)

    async def _unknown_account(self, agent: Agent) -> Verification:
        await self._audit.record(
            AuditEvent(EventType.VERIFY_FAILED, None, agent, reason="unknown_account")
        )
        metrics.count_verification("invalid")
        return Verification(valid=False, account_id=None, verified_at=None)

    async def _conclude(
        self, account_id: UUID, keys: list[str], reply: list[Any], agent: Agent
    ) -> Verification:
        """Audit the outcome of `verify_pin` (undoing its change if Postgres refuses the
        rows), count it, and answer."""
        outcome = reply[0].decode()
        before = _Snapshot.from_reply(reply[1:5])
        failures, failures_pttl = reply[5], int(reply[6])

        if outcome == "valid":
            events = [AuditEvent(EventType.VERIFIED, account_id, agent)]
        else:
            events = [AuditEvent(EventType.VERIFY_FAILED, account_id, agent, reason=outcome)]
            if outcome == "locked":
                events.append(AuditEvent(EventType.LOCKED, account_id, agent))
        evaluated = outcome != "locked_out"
        at = await self._record_or_restore(
            events,
            keys,
            touched=before.digest,
            snapshot=before if evaluated else None,
            failures=(failures, failures_pttl) if evaluated else None,
            unlock=outcome == "locked",
        )
        metrics.count_verification(metrics.verification_outcome(outcome))
        if outcome == "locked":
            metrics.LOCKS.inc()
        if outcome == "valid":
            return Verification(valid=True, account_id=account_id, verified_at=at)
        return Verification(valid=False, account_id=None, verified_at=None)

    async def _record_or_restore(
        self,
        events: list[AuditEvent],
        keys: list[str],
        *,
        touched: bytes | None,
        snapshot: _Snapshot | None,
        failures: tuple[bytes | None, int] | None = None,
        unlock: bool = False,
    ) -> datetime:
        """Commit the audit rows; if Postgres refuses, put Redis back as it was, then fail."""

        async def undo() -> None:
            await self._restore_state(keys, touched, snapshot, failures, unlock)

        needs_undo = snapshot is not None or failures is not None or unlock
        return await self._audit.record(*events, undo=undo if needs_undo else None)

    async def _restore_state(
        self,
        keys: list[str],
        touched: bytes | None,
        snapshot: _Snapshot | None,
        failures: tuple[bytes | None, int] | None,
        unlock: bool,
    ) -> None:
        if snapshot is not None:
            touched_arg: bytes | str = touched or ""
            pin_args = snapshot.args()
        else:
            # Leave the PIN alone: a one-byte marker never equals a stored 16-byte digest.
            touched_arg, pin_args = "-", ["", "", "", 0]
        failure_args: list[bytes | str | int] = (
            ["1", failures[0] or "", failures[1]] if failures is not None else ["0", "", 0]
        )
        try:
            async with self._redis.guard():
                await self._restore(
                    keys=keys,
                    args=[touched_arg, *pin_args, *failure_args, "1" if unlock else "0"],
                )
        except Unavailable:
            # Redis went away too: the PIN change stands without an audit row being claimed,
            # and the caller still gets 503. Logged for ops; no secret in the message.
            log.error("could not restore PIN state after an audit failure")
