"""Two-factor sign-in: a TOTP authenticator app (RFC 6238) and single-use recovery codes.

State:
- Postgres `account_totp`: the TOTP secret, AES-256-GCM encrypted with a key derived from
  SECRET_KEY and bound to the account id; `enabled_at` is NULL while enrollment is pending.
- Postgres `account_recovery_codes`: keyed digests only; a code is spent by one atomic UPDATE.
- Redis, per account under the hash tag `{<account tag>}` (one Redis Cluster slot):
  `mfafail:{id}`  consecutive wrong second-factor codes; a new sign-in does not reset it;
  `mfalock:{id}`  present while second-factor sign-in for the account is refused;
  `totpstep:{id}:<step>`  an accepted time-step, kept until it can no longer be valid.
- Redis `mfatok:{<digest>}`: an mfa_token's account and tries, with the token's TTL.

Attempts are counted *before* the code is checked (atomically, in Lua), so concurrent guesses
cannot exceed either limit; a right code resets the account's count.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import math
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.accounts import AccountService
from service.audit import AuditLog
from service.errors import (
    InvalidCode,
    InvalidSecondFactor,
    MfaAlreadyEnabled,
    MfaEnrollmentNotStarted,
    MfaLocked,
    MfaNotEnabled,
    MfaRequired,
)
from service.keys import keyed_digest
from service.limits import FAILURE_COUNTER_TTL_MS
from service.models import AuditEvent, EventType
from service.persistence import mfa as sql
from service.persistence.db import Connection, Database
from service.redis_store import RedisStore
from service.sessions import SessionStore
from service.tokens import MFA_TOKEN_PREFIX, new_token

log = logging.getLogger(__name__)

TOTP_DIGITS = 6
TOTP_STEP_SECONDS = 30
TOTP_DRIFT_STEPS = 1  # one step of clock drift either way
RECOVERY_CODE_COUNT = 10
# 12 base32 characters (60 bits), shown as xxxx-xxxx-xxxx: no 0/O or 1/I/L to confuse.
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_RECOVERY_GROUPS, _RECOVERY_GROUP_LENGTH = 3, 4
_RECOVERY_NORMALIZED = re.compile(r"^[a-z2-7]{12}$")
_TOTP_NORMALIZED = re.compile(r"^[0-9]{6}$")


@dataclass(frozen=True)
class Enrollment:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaStatus:
    enabled: bool
    enrollment_pending: bool
    recovery_codes_left: int


class TotpCipher:
    """AES-256-GCM for TOTP secrets at rest; the account id is the associated data."""

    _VERSION = b"\x01"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, account_id: UUID, secret: str) -> bytes:
        nonce = os.urandom(12)
        return self._VERSION + nonce + self._aead.encrypt(nonce, secret.encode(), account_id.bytes)

    def decrypt(self, account_id: UUID, blob: bytes) -> str | None:
        """The secret, or None if it does not decrypt (SECRET_KEY changed, row tampered)."""
        if blob[:1] != self._VERSION:
            return None
        try:
            return self._aead.decrypt(blob[1:13], blob[13:], account_id.bytes).decode()
        except InvalidTag:
            return None


def new_recovery_code() -> str:
    chars = "".join(
        secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUPS * _RECOVERY_GROUP_LENGTH)
    )
    return "-".join(
        chars[i : i + _RECOVERY_GROUP_LENGTH] for i in range(0, len(chars), _RECOVERY_GROUP_LENGTH)
    )


def _normalize(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


def totp_code(code: str) -> str | None:
    """The six digits if `code` is shaped like a TOTP code (spaces allowed), else None."""
    normalized = _normalize(code)
    return normalized if _TOTP_NORMALIZED.match(normalized) else None


def recovery_code(code: str) -> str | None:
    """The normalized recovery code (any case, hyphens and spaces ignored), else None."""
    normalized = _normalize(code)
    return normalized if _RECOVERY_NORMALIZED.match(normalized) else None


def qr_svg(data: str) -> str:
    """A standalone SVG of the QR code (with its XML namespace, without an XML declaration)."""
    buffer = io.BytesIO()
    segno.make(data, error="m").save(
        buffer, kind="svg", xmldecl=False, nl=False, scale=4, title="Authenticator set-up code"
    )
    return buffer.getvalue().decode()


class MfaService:
    def __init__(
        self,
        db: Database,
        redis: RedisStore,
        audit: AuditLog,
        sessions: SessionStore,
        accounts: AccountService,
        *,
        totp_key: bytes,
        recovery_key: bytes,
        mfa_token_key: bytes,
        issuer: str,
        token_ttl_seconds: int,
        token_max_attempts: int,
        account_max_failures: int,
        lock_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._redis = redis
        self._keys = redis.keys
        self._audit = audit
        self._sessions = sessions
        self._accounts = accounts
        self._cipher = TotpCipher(totp_key)
        self._recovery_key = recovery_key
        self._mfa_token_key = mfa_token_key
        self.issuer = issuer
        self.token_ttl_seconds = token_ttl_seconds
        self.token_max_attempts = token_max_attempts
        self.account_max_failures = account_max_failures
        self.lock_seconds = lock_seconds
        self._clock = clock
        self._token_new = redis.script("mfa_token_open")
        self._token_try = redis.script("mfa_token_try")
        self._account_try = redis.script("mfa_account_try")
        self._account_failed = redis.script("mfa_account_failed")

    # -- status and enrollment ------------------------------------------------------------

    async def is_enabled(self, account_id: UUID) -> bool:
        async with self._db.connection() as conn:
            return await sql.is_enabled(conn, account_id)

    async def status(self, account_id: UUID) -> MfaStatus:
        async with self._db.connection() as conn:
            state = await sql.totp_state(conn, account_id)
            left = await sql.recovery_codes_left(conn, account_id)
        enabled = state is not None and state["enabled_at"] is not None
        return MfaStatus(
            enabled=enabled,
            enrollment_pending=state is not None and not enabled,
            recovery_codes_left=left if enabled else 0,
        )

    async def start_enrollment(self, account_id: UUID) -> Enrollment:
        """A new secret, pending until confirmed; replaces an earlier unconfirmed one."""
        account = await self._accounts.get(account_id)
        secret = pyotp.random_base32()  # 160 bits, as RFC 4226 recommends
        async with self._db.connection() as conn:
            started = await sql.start_enrollment(
                conn, account_id, self._cipher.encrypt(account_id, secret)
            )
        if not started:
            raise MfaAlreadyEnabled()
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
            name=account.email or str(account.id), issuer_name=self.issuer
        )
        # About 6 ms of CPU: off the event loop.
        return Enrollment(
            secret=secret, otpauth_uri=uri, qr_svg=await asyncio.to_thread(qr_svg, uri)
        )

    async def confirm_enrollment(
        self, account_id: UUID, code: str, *, keep_session: str | None
    ) -> list[str]:
        """Turn 2FA on with a first code; returns the recovery codes (shown only now).

        Every other session of the account ends: it was opened with the password alone."""
        async with self._db.connection() as conn:
            state = await sql.totp_state(conn, account_id)
        if state is None:
            raise MfaEnrollmentNotStarted()
        if state["enabled_at"] is not None:
            raise MfaAlreadyEnabled()
        blob: bytes = state["secret_encrypted"]
        secret = self._cipher.decrypt(account_id, blob)
        digits = totp_code(code)
        if (
            secret is None
            or digits is None
            or not await self._accept_totp(account_id, secret, digits)
        ):
            raise InvalidCode()

        codes, hashes = self._new_recovery_codes(account_id)

        async def write(conn: Connection) -> bool:
            if await sql.enable(conn, account_id, blob, hashes) is None:
                return False
            await self._audit.insert(conn, AuditEvent(EventType.MFA_ENABLED, account_id))
            return True

        if not await self._db.must_write(write):
            # Confirmed or replaced by a concurrent request meanwhile.
            if await self.is_enabled(account_id):
                raise MfaAlreadyEnabled()
            raise MfaEnrollmentNotStarted("The enrollment was replaced; scan the newest QR code.")
        await self._sessions.revoke_all(account_id, keep=keep_session)
        return codes

    async def regenerate_recovery_codes(self, account_id: UUID, code: str) -> list[str]:
        """Ten new recovery codes (shown only now); every earlier one stops working."""
        if not await self.is_enabled(account_id):
            raise MfaNotEnabled()
        if not await self._attempt(account_id, code, reason="regenerate"):
            raise InvalidCode()
        codes, hashes = self._new_recovery_codes(account_id)

        async def write(conn: Connection) -> bool:
            if not await sql.replace_recovery_codes(conn, account_id, hashes):
                return False
            await self._audit.insert(
                conn, AuditEvent(EventType.RECOVERY_CODES_REGENERATED, account_id)
            )
            return True

        if not await self._db.must_write(write):
            raise MfaNotEnabled()  # turned off meanwhile
        return codes

    async def disable(self, account_id: UUID, code: str) -> None:
        """Turn 2FA off, proven with a current TOTP code or an unused recovery code."""
        if not await self.is_enabled(account_id):
            raise MfaNotEnabled()
        if not await self._attempt(account_id, code, reason="disable"):
            raise InvalidCode()

        async def write(conn: Connection) -> bool:
            if not await sql.disable(conn, account_id):
                return False
            await self._audit.insert(conn, AuditEvent(EventType.MFA_DISABLED, account_id))
            return True

        if not await self._db.must_write(write):
            raise MfaNotEnabled()

    # -- sign-in ----------------------------------------------------------------------------

    async def sign_in_with_password(self, account_id: UUID) -> str:
        """A session for a password-verified account, or `MfaRequired` carrying an mfa_token.

        This is the only way from a password to a session: with 2FA on, none is made."""
        if await self.is_enabled(account_id):
            raise await self._mfa_required(account_id)
        token = await self._sessions.create(account_id)
        # 2FA may have been turned on while the session was being made. Either this check
        # sees it, or the session was indexed before the switch ended every other session.
        if await self.is_enabled(account_id):
            await self._sessions.revoke(token)
            raise await self._mfa_required(account_id)
        return token

    async def sign_in_with_code(self, mfa_token: str, code: str) -> str:
        """Second step: a session for a live mfa_token and a right code."""
        token_key = self._mfa_token_redis_key(mfa_token)
        if token_key is None:
            raise _dead_token()
        async with self._redis.guard():
            reply = await self._token_try(keys=[token_key], args=[self.token_max_attempts])
        if reply[0] != b"ok":
            raise _dead_token()
        account_id, tries = UUID(bytes=reply[1]), int(reply[2])

        if not await self._attempt(account_id, code, reason="sign_in"):
            left = self.token_max_attempts - tries
            if left <= 0:
                async with self._redis.guard():
                    await self._redis.client.delete(token_key)
            raise InvalidSecondFactor(attempts_left=max(0, left))
        async with self._redis.guard():
            consumed = await self._redis.client.delete(token_key)
        if not consumed:
            raise _dead_token()  # another request with a right code used this token first
        return await self._sessions.create(account_id, mfa=True)

    async def _mfa_required(self, account_id: UUID) -> MfaRequired:
        token = new_token(MFA_TOKEN_PREFIX)
        key = self._keys.mfa_token(keyed_digest(self._mfa_token_key, token).hex())
        async with self._redis.guard():
            await self._token_new(
                keys=[key], args=[account_id.bytes, self.token_ttl_seconds * 1000]
            )
        return MfaRequired(mfa_token=token, mfa_token_expires_in=self.token_ttl_seconds)

    def _mfa_token_redis_key(self, token: str) -> str | None:
        if not token.startswith(MFA_TOKEN_PREFIX) or len(token) > 128:
            return None
        return self._keys.mfa_token(keyed_digest(self._mfa_token_key, token).hex())

    # -- checking codes ---------------------------------------------------------------------

    async def _attempt(self, account_id: UUID, code: str, *, reason: str) -> bool:
        """Check a second-factor code under the account's limit; wrong codes are audited."""
        counter_keys = [self._keys.mfa_failures(account_id), self._keys.mfa_lock(account_id)]
        async with self._redis.guard():
            reply = await self._account_try(
                keys=counter_keys,
                args=[
                    self.account_max_failures,
                    self.lock_seconds * 1000,
                    FAILURE_COUNTER_TTL_MS,
                ],
            )
        if reply[0] == b"locked":
            if len(reply) > 2:  # this request set the lock
                await self._audit.record(AuditEvent(EventType.MFA_LOCKED, account_id))
            raise MfaLocked(retry_after=math.ceil(max(int(reply[1]), 1000) / 1000))

        if await self._check_code(account_id, code):
            async with self._redis.guard():
                await self._redis.client.delete(counter_keys[0])
            return True

        async with self._redis.guard():
            locked_now = await self._account_failed(
                keys=counter_keys, args=[self.account_max_failures, self.lock_seconds * 1000]
            )
        events = [AuditEvent(EventType.MFA_FAILED, account_id, reason=reason)]
        if locked_now == 1:
            events.append(AuditEvent(EventType.MFA_LOCKED, account_id))
        await self._audit.record(*events)
        return False

    async def _check_code(self, account_id: UUID, code: str) -> bool:
        """A current TOTP code not used before, or an unused recovery code (then spent)."""
        digits = totp_code(code)
        if digits is not None:
            async with self._db.connection() as conn:
                state = await sql.totp_state(conn, account_id)
            if state is None or state["enabled_at"] is None:
                return False
            secret = self._cipher.decrypt(account_id, state["secret_encrypted"])
            if secret is None:
                log.error(
                    "the TOTP secret of account %s does not decrypt: was SECRET_KEY changed?",
                    account_id,
                )
                return False
            return await self._accept_totp(account_id, secret, digits)
        normalized = recovery_code(code)
        if normalized is not None:
            return await self._spend_recovery_code(account_id, normalized)
        return False

    async def _accept_totp(self, account_id: UUID, secret: str, digits: str) -> bool:
        """True once per account and time-step: the step is claimed atomically in Redis and
        remembered until no clock could still accept it."""
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
        current = int(self._clock() // TOTP_STEP_SECONDS)
        matching = [
            step
            for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1)
            # Every step is compared (no early exit), each in constant time.
            if hmac.compare_digest(totp.generate_otp(step).encode(), digits.encode())
        ]
        for step in matching:
            # Valid until the clock passes step + drift; one more step of slack for clock
            # differences between instances of this service.
            forget_at_ms = (step + TOTP_DRIFT_STEPS + 2) * TOTP_STEP_SECONDS * 1000
            async with self._redis.guard():
                claimed = await self._redis.client.set(
                    self._keys.totp_step(account_id, step), b"1", nx=True, pxat=forget_at_ms
                )
            if claimed:
                return True
        return False

    def _new_recovery_codes(self, account_id: UUID) -> tuple[list[str], list[bytes]]:
        codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
        return codes, [self._recovery_digest(account_id, _normalize(c)) for c in codes]

    def _recovery_digest(self, account_id: UUID, normalized: str) -> bytes:
        return keyed_digest(self._recovery_key, str(account_id), normalized)

    async def _spend_recovery_code(self, account_id: UUID, normalized: str) -> bool:
        digest = self._recovery_digest(account_id, normalized)

        async def write(conn: Connection) -> bool:
            if not await sql.use_recovery_code(conn, account_id, digest):
                return False
            await self._audit.insert(conn, AuditEvent(EventType.RECOVERY_CODE_USED, account_id))
            return True

        return await self._db.must_write(write)


def _dead_token() -> InvalidSecondFactor:
    return InvalidSecondFactor(
        "The mfa_token is unknown, expired, already used or out of attempts: sign in again.",
        attempts_left=0,
    )
