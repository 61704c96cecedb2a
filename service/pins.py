"""Support PINs: issue (replacing the previous one), status, revoke, and the check of a PIN.

State per account, all under the hash tag `{<account tag>}` (one Redis Cluster slot):
- `pin:{tag}`      hash {h: the PIN's digest, a: failed tries}, with the PIN's TTL, so a new
                   PIN overwrites the old one and expiry is Redis's (its TTL is the expiry).
- `pinfail:{tag}`  consecutive failed verifications of the account; a new PIN does not reset it.
- `pinlock:{tag}`  present while verifications for the account are refused.

The digest is HMAC-SHA256 under the PIN key (derived from SECRET_KEY) over the account id and
the PIN: without the key nothing in Redis reveals a PIN, and a digest copied to another
account's key does not verify there. The scripts are in `service/lua/`.

Every outcome is committed to the audit log before it is answered. Redis changes come first
(each is one atomic script) and are undone if PostgreSQL does not take the audit row, so no
PIN is ever shown, consumed or refused without its row.
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
from service.errors import MfaRequiredByPolicy, Unauthenticated, Unavailable
from service.events import Contact, EventBus, rfc3339
from service.keys import keyed_digest
from service.limits import FAILURE_COUNTER_TTL_MS, LimitHit, RateLimiter, check_hit, refused
from service.models import Agent, AuditEvent, EventType
from service.redis_store import RedisStore
from service.sessions import Believed, SessionClaim

log = logging.getLogger(__name__)


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
    """A PIN as a script found it, to put it back."""

    digest: bytes | None
    attempts: bytes | None
    pttl: int

    @classmethod
    def from_reply(cls, reply: list[Any]) -> _Snapshot:
        return cls(reply[0], reply[1], int(reply[2]))

    def args(self) -> list[bytes | str | int]:
        return [self.digest or "", self.attempts or "", self.pttl]


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class PinService:
    def __init__(
        self,
        redis: RedisStore,
        audit: AuditLog,
        limits: RateLimiter,
        *,
        pin_key: bytes,
        length: int,
        ttl_seconds: int,
        max_attempts: int,
        account_max_failures: int,
        account_lock_seconds: int,
        require_mfa: bool = False,
        events: EventBus | None = None,
        contact_window_seconds: int = 900,
    ) -> None:
        self._redis = redis
        self._keys = redis.keys
        self._audit = audit
        self._limits = limits
        self._pin_key = pin_key
        self.length = length
        self.ttl_seconds = ttl_seconds
        self.max_attempts = max_attempts
        self.account_max_failures = account_max_failures
        self.account_lock_seconds = account_lock_seconds
        self.require_mfa = require_mfa
        self._events = events
        self.contact_window_seconds = contact_window_seconds
        self._issue = redis.script("issue_pin")
        self._verify = redis.script("verify_pin")
        self._revoke = redis.script("revoke_pin")
        self._restore = redis.script("restore_pin")

    def digest(self, account_id: UUID, pin: str) -> bytes:
        """The PIN's stored digest, bound to its account."""
        return self._digest_for(str(account_id), pin)

    def _digest_for(self, owner: str, pin: str) -> bytes:
        # The owner is an account id, or the subject of an address with no account.
        return keyed_digest(self._pin_key, owner, pin)

    def new_pin(self) -> str:
        return f"{secrets.randbelow(10**self.length):0{self.length}d}"

    async def issue_pin(self, session: SessionClaim | Believed) -> IssuedPin:
        """A new PIN for the session's account; the previous one stops working in the same
        atomic step, which first checks the session (`Unauthenticated` if it is not live,
        `MfaRequiredByPolicy` if it must have used a second factor and did not) and counts
        the account's issuance limit (`RateLimited` when over it). A `Believed` caller (a
        provider's access token, checked already) has no session to check."""
        account_id = session.account_id
        if isinstance(session, Believed):
            if self.require_mfa and not session.mfa:
                raise MfaRequiredByPolicy()
            session_key, holder = self._keys.pin(account_id), b""
        else:
            session_key, holder = session.redis_key, account_id.bytes
        pin = self.new_pin()
        digest = self.digest(account_id, pin)
        limit: LimitHit = self._limits.pin_issue_hit(account_id)
        async with self._redis.guard():
            reply = await self._issue(
                keys=[self._keys.pin(account_id), limit.key, session_key],
                args=[
                    digest,
                    self.ttl_seconds * 1000,
                    *limit.args,
                    holder,
                    "1" if self.require_mfa else "0",
                ],
            )
        if int(reply[0]) == -1:
            raise Unauthenticated()
        if int(reply[0]) == -2:
            raise MfaRequiredByPolicy()
        check_hit(reply)
        await self._record_or_restore(
            [AuditEvent(EventType.ISSUED, account_id)],
            account_id,
            touched=digest,
            snapshot=_Snapshot.from_reply(reply[1:]),
        )
        metrics.PINS_ISSUED.inc()
        # Redis's clock says when it expires, and GET /v1/me/support-pin reads the same value.
        expires_at = _from_ms(int(reply[4]))
        issued = IssuedPin(pin=pin, expires_at=expires_at, ttl_seconds=self.ttl_seconds)
        if self._events is not None:
            await self._events.publish_quietly(
                account_id,
                (
                    "pin_issued",
                    {"at": rfc3339(datetime.now(UTC)), "expires_at": rfc3339(issued.expires_at)},
                ),
            )
        return issued

    async def status(self, account_id: UUID) -> PinStatus:
        key = self._keys.pin(account_id)
        async with self._redis.guard(), self._redis.client.pipeline(transaction=False) as pipe:
            pipe.hget(key, "e")
            pipe.pttl(key)
            expires, left_ms = await pipe.execute()
        if left_ms < 0:  # -2: no PIN
            return PinStatus(active=False, expires_at=None)
        if expires is not None:  # the expiry the issuing answer gave, to the millisecond
            return PinStatus(active=True, expires_at=_from_ms(int(expires)))
        return PinStatus(active=True, expires_at=_from_ms(int(time.time() * 1000) + left_ms))

    async def revoke(self, account_id: UUID) -> None:
        async with self._redis.guard():
            reply = await self._revoke(keys=[self._keys.pin(account_id)])
        revoked = _Snapshot.from_reply(reply)
        if revoked.digest is None:
            return  # nothing was active: nothing happened, nothing to record
        await self._record_or_restore(
            [AuditEvent(EventType.REVOKED, account_id)],
            account_id,
            touched=revoked.digest,
            snapshot=revoked,
        )

    async def unlock(self, subject: str) -> None:
        """End a verification subject's lock and forget its failures (an administrator's
        decision; the PIN itself, if any, is left as it is)."""
        _, failures, lock = self._keys.pin_state_of(subject)
        async with self._redis.guard(), self._redis.client.pipeline(transaction=False) as pipe:
            pipe.delete(failures)
            pipe.delete(lock)
            await pipe.execute()

    async def check(
        self,
        account_id: UUID | None,
        email: str,
        pin: str,
        agent: Agent,
        case_ref: str | None = None,
    ) -> Verification:
        """For `email` (normalized): count the account's verification limit (`RateLimited`
        when over), then check `pin` against the account under discussion and consume it if
        right: one script, the same for an address with no account. Every way of being wrong
        gives the same answer."""
        # An address with no account takes the same steps over keys of its own (its failures
        # are counted, it can be "locked"), so neither answer nor time tells it apart.
        subject = self._limits.verification_subject(account_id, email)
        limit = self._limits.verification_hit(subject)
        candidate = self._digest_for(str(account_id) if account_id else subject, pin)
        async with self._redis.guard():
            reply = await self._verify(
                keys=[limit.key, *self._keys.pin_state_of(subject)],
                args=[
                    *limit.args,
                    candidate,
                    self.max_attempts,
                    self.account_max_failures,
                    self.account_lock_seconds * 1000,
                    FAILURE_COUNTER_TTL_MS,
                ],
            )
        outcome = reply[0].decode()
        if outcome == "limited":
            raise refused(int(reply[1]))
        if account_id is None:
            # No PIN is ever stored under an unknown address's keys: never 'valid'.
            await self._audit.record(
                AuditEvent(
                    EventType.VERIFY_FAILED,
                    None,
                    agent,
                    reason="unknown_account",
                    case_ref=case_ref,
                    target=email,  # for an administrator's search; never shown to callers
                )
            )
            metrics.count_verification("invalid")
            return Verification(valid=False, account_id=None, verified_at=None)
        return await self._conclude(account_id, outcome, reply[1:], agent, case_ref)

    async def _conclude(
        self,
        account_id: UUID,
        outcome: str,
        state: list[Any],
        agent: Agent,
        case_ref: str | None,
    ) -> Verification:
        """Audit a check's outcome (undoing its change if PostgreSQL refuses the rows), count
        it, and answer."""
        before = _Snapshot.from_reply(state[0:3])
        failures, failures_pttl = state[3], int(state[4])
        if outcome == "valid":
            events = [AuditEvent(EventType.VERIFIED, account_id, agent, case_ref=case_ref)]
        else:
            events = [
                AuditEvent(
                    EventType.VERIFY_FAILED, account_id, agent, reason=outcome, case_ref=case_ref
                )
            ]
            if outcome == "locked":
                events.append(AuditEvent(EventType.LOCKED, account_id, agent, case_ref=case_ref))
        evaluated = outcome != "locked_out"
        at = await self._record_or_restore(
            events,
            account_id,
            touched=before.digest,
            snapshot=before if evaluated else None,
            failures=(failures, failures_pttl) if evaluated else None,
            unlock=outcome == "locked",
        )
        metrics.count_verification(metrics.verification_outcome(outcome))
        if outcome == "locked":
            metrics.LOCKS.inc()
        await self._announce_check(account_id, outcome, agent, case_ref, at)
        if outcome == "valid":
            return Verification(valid=True, account_id=account_id, verified_at=at)
        return Verification(valid=False, account_id=None, verified_at=None)

    async def _announce_check(
        self, account_id: UUID, outcome: str, agent: Agent, case_ref: str | None, at: datetime
    ) -> None:
        """The account's live pages learn of a check (committed already) at once."""
        if self._events is None:
            return
        when = rfc3339(at)
        if outcome == "valid":
            contact = Contact(agent.name, case_ref, at, self.contact_window_seconds)
            # A right PIN says the account exists anyway: published before the answer, so the
            # contact window is open when the agent hangs up and the customer looks.
            await self._events.publish_quietly(
                account_id,
                ("pin_verified", {"agent": agent.name, "case_ref": case_ref, "at": when}),
                (
                    "contact",
                    {"in_contact": True, "agent": agent.name, "case_ref": case_ref, "since": when},
                ),
                contact=contact,
            )
            return
        announced: list[tuple[str, dict[str, Any]]] = [("verify_failed", {"at": when})]
        if outcome == "locked":
            announced.append(("locked", {"at": when}))
        # After the answer: a wrong PIN must take as long for an address with no account.
        self._events.publish_soon(account_id, *announced)

    async def _record_or_restore(
        self,
        events: list[AuditEvent],
        account_id: UUID,
        *,
        touched: bytes | None,
        snapshot: _Snapshot | None,
        failures: tuple[bytes | None, int] | None = None,
        unlock: bool = False,
    ) -> datetime:
        """Commit the audit rows; if PostgreSQL refuses, put Redis back as it was, then fail."""

        async def undo() -> None:
            await self._restore_state(account_id, touched, snapshot, failures, unlock)

        needs_undo = snapshot is not None or failures is not None or unlock
        return await self._audit.record(*events, undo=undo if needs_undo else None)

    async def _restore_state(
        self,
        account_id: UUID,
        touched: bytes | None,
        snapshot: _Snapshot | None,
        failures: tuple[bytes | None, int] | None,
        unlock: bool,
    ) -> None:
        if snapshot is not None:
            touched_arg: bytes | str = touched or ""
            pin_args = snapshot.args()
        else:
            # Leave the PIN alone: a one-byte marker never equals a stored 32-byte digest.
            touched_arg, pin_args = "-", ["", "", 0]
        failure_args: list[bytes | str | int] = (
            ["1", failures[0] or "", failures[1]] if failures is not None else ["0", "", 0]
        )
        try:
            async with self._redis.guard():
                await self._restore(
                    keys=self._keys.pin_state(account_id),
                    args=[touched_arg, *pin_args, *failure_args, "1" if unlock else "0"],
                )
        except Unavailable:
            # Redis went away too: the change stands without an audit row being claimed, and
            # the caller still gets 503. Logged for ops; no secret in the message.
            log.error("could not restore PIN state after an audit failure")
