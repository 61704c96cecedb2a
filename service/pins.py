"""Support PINs: issue (replacing the previous one), status, revoke and agent verification.

State per account, all under the hash tag `{<account tag>}` (one Redis Cluster slot; the tag is
the account id in 22 base64url characters, see `redis_store.account_tag`):
- `pin:{id}`      hash {h: keyed digest of the PIN, e: expiry in epoch ms, a: failed tries},
                  with the PIN's TTL, so a new PIN overwrites the old one and expiry is Redis's.
- `pinfail:{id}`  consecutive failed verifications of the account; a new PIN does not reset it.
- `pinlock:{id}`  present while verifications for the account are refused.

Every outcome is committed to the audit log before it is answered. Redis changes come first
(they are atomic scripts) and are undone if Postgres does not take the audit row, so no PIN
is ever shown, consumed or refused without its row.
"""

from __future__ import annotations

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
from service.limits import HIT_FUNCTION, LimitHit, check_hit
from service.models import Agent, AuditEvent, EventType
from service.redis_store import RedisStore

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

# KEYS: pin, account failures, account lock.
# ARGV: candidate digest, max tries per PIN, max account failures, lock ms, failures ttl ms.
# Returns {outcome, pin h, pin e, pin a, pin pttl, failures, failures pttl} (state before).
_VERIFY = (
    _CONSTANT_TIME_EQUAL
    + """
local pin = redis.call('HMGET', KEYS[1], 'h', 'e', 'a')
local pttl = redis.call('PTTL', KEYS[1])
local fails = redis.call('GET', KEYS[2])
local fails_pttl = redis.call('PTTL', KEYS[2])
local function answer(outcome)
  return {outcome, pin[1], pin[2], pin[3], pttl, fails, fails_pttl}
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return answer('locked_out')
end
if pin[1] and equal(pin[1], ARGV[1]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return answer('valid')
end
if pin[1] then
  if redis.call('HINCRBY', KEYS[1], 'a', 1) >= tonumber(ARGV[2]) then
    redis.call('DEL', KEYS[1])
  end
end
local failures = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if failures >= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
  return answer('locked')
end
if pin[1] then
  return answer('wrong_pin')
end
return answer('no_pin')
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
        self._restore = redis.script(_RESTORE)
        self._probe = redis.script(_PROBE)

    def _digest(self, account_id: UUID, pin: str) -> bytes:
        # Bound to the account: the same digits are a different secret for another account.
        return keyed_digest(self._pin_key, str(account_id), pin)[:16]

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
            await self._audit.record(
                AuditEvent(EventType.VERIFY_FAILED, None, agent, reason="unknown_account")
            )
            metrics.count_verification("invalid")
            return Verification(valid=False, account_id=None, verified_at=None)

        keys = self._account_keys(account_id)
        async with self._redis.guard(scripts_only=True):
            reply = await self._verify(
                keys=keys,
                args=[
                    self._digest(account_id, pin),
                    self.max_attempts,
                    self.account_max_failures,
                    self.account_lock_seconds * 1000,
                    FAILURE_COUNTER_TTL_MS,
                ],
            )
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
