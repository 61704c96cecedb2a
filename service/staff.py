"""Support staff: people with a role, signed in through the company's workforce provider or
with their own password and an authenticator app (a second factor is not optional for staff).

Roles nest: `agent` verifies PINs, `supervisor` also searches the audit log, `admin` also
manages staff, API keys and locks.

A staff session is `sss_` + 256 random bits; Redis holds its keyed digest → the person's id
and session epoch, for at most STAFF_SESSION_TTL_SECONDS. Every request reads the person's
row: a disabled person, or one whose role changed (the epoch moved), is refused at once.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from uuid import UUID

import asyncpg
import pyotp

from service.accounts import storable_text
from service.audit import AuditLog
from service.errors import (
    InvalidCode,
    InvalidCredentials,
    InvalidSecondFactor,
    LastAdmin,
    MfaLocked,
    MfaRequired,
    NotFound,
)
from service.keys import keyed_digest
from service.limits import FAILURE_COUNTER_TTL_MS
from service.mfa import (
    TOTP_DIGITS,
    TOTP_DRIFT_STEPS,
    TOTP_STEP_SECONDS,
    Enrollment,
    TotpCipher,
    qr_svg,
    totp_code,
)
from service.models import Agent, AuditEvent, EventType
from service.password_policy import check_new_password
from service.passwords import PasswordHasher
from service.persistence import staff as sql
from service.persistence.db import Connection, Database
from service.redis_store import RedisStore
from service.tokens import (
    STAFF_MFA_TOKEN_PREFIX,
    STAFF_SESSION_PREFIX,
    STAFF_SETUP_PREFIX,
    new_token,
)

Role = Literal["agent", "supervisor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
SETUP_LINK_TTL = timedelta(hours=24)
_EPOCH = struct.Struct(">I")


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1


def has_role(role: str, needed: Role) -> bool:
    """Each role includes the ones before it."""
    return role_rank(role) >= role_rank(needed)


def role_from_claims(claims: dict[str, Any], claim: str, role_map: dict[str, Role]) -> Role | None:
    """The highest role any of the person's groups maps to, or None."""
    groups = claims.get(claim)
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list):
        return None
    roles: list[Role] = [
        role_map[group] for group in groups if isinstance(group, str) and group in role_map
    ]
    if not roles:
        return None
    return max(roles, key=role_rank)


def setup_url(public_url: str, token: str) -> str:
    """The set-up page's link. The secret rides in the fragment: browsers never send it, so
    no server or proxy logs it."""
    return f"{public_url}/staff/setup#token={token}"


@dataclass(frozen=True)
class Staff:
    id: UUID
    email: str
    name: str
    role: Role
    source: Literal["sso", "builtin"]
    disabled: bool
    last_sign_in_at: datetime | None
    created_at: datetime
    epoch: int

    @classmethod
    def of(cls, row: asyncpg.Record) -> Staff:
        return cls(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            role=row["role"],
            source=row["source"],
            disabled=row["disabled_at"] is not None,
            last_sign_in_at=row["last_sign_in_at"],
            created_at=row["created_at"],
            epoch=row["session_epoch"],
        )

    def as_agent(self) -> Agent:
        """The verifier the audit log and the customer's events name."""
        return Agent(self.id, self.name, staff_email=self.email)


@dataclass(frozen=True)
class NewStaff:
    staff: Staff
    setup_token: str


class StaffService:
    def __init__(
        self,
        db: Database,
        redis: RedisStore,
        audit: AuditLog,
        hasher: PasswordHasher,
        *,
        session_key: bytes,
        setup_key: bytes,
        mfa_token_key: bytes,
        totp_key: bytes,
        session_ttl_seconds: int,
        totp_issuer: str,
        token_ttl_seconds: int,
        token_max_attempts: int,
        max_failures: int,
        lock_seconds: int,
    ) -> None:
        self._db = db
        self._redis = redis
        self._keys = redis.keys
        self._audit = audit
        self._hasher = hasher
        self._session_key = session_key
        self._setup_key = setup_key
        self._mfa_token_key = mfa_token_key
        self._cipher = TotpCipher(totp_key)
        self.session_ttl_seconds = session_ttl_seconds
        self.totp_issuer = totp_issuer
        self.token_ttl_seconds = token_ttl_seconds
        self.token_max_attempts = token_max_attempts
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self._token_new = redis.script("mfa_token_open")
        self._token_try = redis.script("mfa_token_try")
        self._account_try = redis.script("mfa_account_try")
        self._account_failed = redis.script("mfa_account_failed")

    # -- administration -----------------------------------------------------------------

    async def add(self, email: str, name: str, role: Role, *, actor: str) -> NewStaff:
        """A built-in staff member and their set-up link's secret (single use, 24 hours)."""
        token, digest = self._new_setup_secret()
        async with self._db.transaction() as conn:
            row = await sql.add(
                conn,
                email,
                name,
                role,
                setup_digest=digest,
                setup_expires_at=datetime.now(UTC) + SETUP_LINK_TTL,
            )
            await self._audit.insert(
                conn,
                AuditEvent(EventType.STAFF_ADDED, actor=actor, target=email, reason=role),
            )
        return NewStaff(Staff.of(row), token)

    async def list(self) -> list[Staff]:
        async with self._db.connection() as conn:
            return [Staff.of(row) for row in await sql.list_all(conn)]

    async def get(self, staff_id: UUID) -> Staff | None:
        async with self._db.connection() as conn:
            row = await sql.by_id(conn, staff_id)
        return Staff.of(row) if row is not None else None

    async def by_email(self, email: str) -> Staff | None:
        async with self._db.connection() as conn:
            row = await sql.by_email(conn, email)
        return Staff.of(row) if row is not None else None

    async def update(
        self,
        staff_id: UUID,
        *,
        role: Role | None = None,
        disabled: bool | None = None,
        actor: str,
    ) -> Staff:
        """Change a role or disable/enable; the person's sessions end at once. The last
        active admin can be neither demoted nor disabled (`LastAdmin`)."""
        async with self._db.transaction() as conn:
            before_row = await sql.by_id(conn, staff_id)
            if before_row is None:
                raise NotFound("No such staff member.")
            before = Staff.of(before_row)
            loses_admin = (
                before.role == "admin"
                and not before.disabled
                and ((role is not None and role != "admin") or disabled is True)
            )
            if loses_admin and (await sql.active_admins(conn)) == [staff_id]:
                raise LastAdmin()
            row = await sql.update(conn, staff_id, role=role, disabled=disabled)
            if row is None:
                raise NotFound("No such staff member.")
            after = Staff.of(row)
            events = []
            if after.role != before.role:
                events.append(
                    AuditEvent(
                        EventType.STAFF_ROLE_CHANGED,
                        actor=actor,
                        target=after.email,
                        reason=f"{before.role}->{after.role}",
                    )
                )
            if after.disabled != before.disabled:
                kind = EventType.STAFF_DISABLED if after.disabled else EventType.STAFF_ENABLED
                events.append(AuditEvent(kind, actor=actor, target=after.email))
            if events:
                await self._audit.insert(conn, *events)
        return after

    async def reissue_setup(self, staff_id: UUID, *, actor: str) -> NewStaff:
        """A new set-up link (a lost authenticator or password): the old credentials stop
        working and the person's sessions end. `NotFound` unless a built-in staff member."""
        token, digest = self._new_setup_secret()
        async with self._db.transaction() as conn:
            row = await sql.reissue_setup(
                conn, staff_id, digest, datetime.now(UTC) + SETUP_LINK_TTL
            )
            if row is None:
                raise NotFound("No built-in staff member with this id.")
            staff = Staff.of(row)
            await self._audit.insert(
                conn, AuditEvent(EventType.STAFF_SETUP_REISSUED, actor=actor, target=staff.email)
            )
        return NewStaff(staff, token)

    # -- set-up of built-in staff -------------------------------------------------------

    def _new_setup_secret(self) -> tuple[str, bytes]:
        token = new_token(STAFF_SETUP_PREFIX)
        return token, self._setup_digest(token)

    def _setup_digest(self, token: str) -> bytes:
        return keyed_digest(self._setup_key, token)

    async def _by_setup_token(self, conn: Connection, token: str) -> asyncpg.Record:
        if not token.startswith(STAFF_SETUP_PREFIX) or len(token) > 128:
            raise InvalidCredentials("The set-up link is not valid, has expired or was used.")
        row = await sql.by_setup_digest(conn, self._setup_digest(token))
        if row is None:
            raise InvalidCredentials("The set-up link is not valid, has expired or was used.")
        return row

    async def start_setup(self, token: str, password: str) -> Enrollment:
        """Set the password (the customer password rules) and a new authenticator secret,
        pending until `confirm_setup` gets a code from it."""
        async with self._db.connection() as conn:
            row = await self._by_setup_token(conn, token)
        check_new_password(password, email=row["email"])
        password_hash = await self._hasher.hash(password)
        secret = pyotp.random_base32()
        async with self._db.connection() as conn:
            await sql.set_credentials(
                conn, row["id"], password_hash, self._cipher.encrypt(row["id"], secret)
            )
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
            name=row["email"], issuer_name=self.totp_issuer
        )
        return Enrollment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))

    async def confirm_setup(self, token: str, code: str) -> None:
        async with self._db.connection() as conn:
            row = await self._by_setup_token(conn, token)
        secret = self._secret_of(row)
        digits = totp_code(code)
        if (
            secret is None
            or digits is None
            or not await self._accept_totp(row["id"], secret, digits)
        ):
            raise InvalidCode()
        async with self._db.connection() as conn:
            if not await sql.finish_setup(conn, row["id"], self._setup_digest(token)):
                raise InvalidCredentials("The set-up link is not valid, has expired or was used.")

    def _secret_of(self, row: asyncpg.Record) -> str | None:
        blob = row["totp_secret"]
        return self._cipher.decrypt(row["id"], blob) if blob is not None else None

    # -- built-in sign-in ---------------------------------------------------------------

    async def check_password(self, email: str, password: str) -> MfaRequired:
        """A right password never signs a staff member in by itself: the answer is
        `MfaRequired` with a single-use mfa_token for the second step. `InvalidCredentials`
        for anything else, after the same argon2 work (unknown email, wrong password,
        disabled, set-up unfinished)."""
        if not storable_text(email) or not storable_text(password):
            # Cannot be a staff member's (nor be hashed): the same answer, after the same work.
            await self._hasher.verify("", None)
            raise InvalidCredentials()
        async with self._db.connection() as conn:
            row = await sql.by_email(conn, email)
        stored = row["password_hash"] if row is not None else None
        right = await self._hasher.verify(password, stored)
        if (
            not right
            or row is None
            or row["disabled_at"] is not None
            or row["totp_enabled_at"] is None
        ):
            raise InvalidCredentials()
        token = new_token(STAFF_MFA_TOKEN_PREFIX)
        async with self._redis.guard():
            await self._token_new(
                keys=[self._mfa_token_redis_key(token)],
                args=[row["id"].bytes, self.token_ttl_seconds * 1000],
            )
        return MfaRequired(mfa_token=token, mfa_token_expires_in=self.token_ttl_seconds)

    def _mfa_token_redis_key(self, token: str) -> str:
        return self._keys.mfa_token(keyed_digest(self._mfa_token_key, token).hex())

    async def sign_in_with_code(self, mfa_token: str, code: str) -> str:
        dead = InvalidSecondFactor(
            "The mfa_token is unknown, expired, already used or out of attempts: sign in again.",
            attempts_left=0,
        )
        if not mfa_token.startswith(STAFF_MFA_TOKEN_PREFIX) or len(mfa_token) > 128:
            raise dead
        token_key = self._mfa_token_redis_key(mfa_token)
        async with self._redis.guard():
            reply = await self._token_try(keys=[token_key], args=[self.token_max_attempts])
        if reply[0] != b"ok":
            raise dead
        staff_id, tries = UUID(bytes=reply[1]), int(reply[2])
        if not await self._attempt(staff_id, code):
            left = self.token_max_attempts - tries
            if left <= 0:
                async with self._redis.guard():
                    await self._redis.client.delete(token_key)
            raise InvalidSecondFactor(attempts_left=max(0, left))
        async with self._redis.guard():
            if not await self._redis.client.delete(token_key):
                raise dead  # a concurrent right code used it first
        staff = await self.get(staff_id)
        if staff is None or staff.disabled:
            raise dead
        return await self._open_session(staff)

    async def _attempt(self, staff_id: UUID, code: str) -> bool:
        """A code under the person's wrong-code limit (the customers' rule and numbers)."""
        counters = [self._keys.mfa_failures(staff_id), self._keys.mfa_lock(staff_id)]
        async with self._redis.guard():
            reply = await self._account_try(
                keys=counters,
                args=[self.max_failures, self.lock_seconds * 1000, FAILURE_COUNTER_TTL_MS],
            )
        if reply[0] == b"locked":
            raise MfaLocked(retry_after=max(1, int(reply[1]) // 1000))
        async with self._db.connection() as conn:
            row = await sql.by_id(conn, staff_id)
        secret = self._secret_of(row) if row is not None else None
        digits = totp_code(code)
        if (
            secret is not None
            and digits is not None
            and await self._accept_totp(staff_id, secret, digits)
        ):
            async with self._redis.guard():
                await self._redis.client.delete(counters[0])
            return True
        async with self._redis.guard():
            await self._account_failed(
                keys=counters, args=[self.max_failures, self.lock_seconds * 1000]
            )
        return False

    async def _accept_totp(self, staff_id: UUID, secret: str, digits: str) -> bool:
        """A current code, once per time-step (the step is claimed in Redis)."""
        totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS)
        current = int(datetime.now(UTC).timestamp() // TOTP_STEP_SECONDS)
        for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
            if secrets.compare_digest(totp.generate_otp(step), digits):
                forget_at_ms = (step + TOTP_DRIFT_STEPS + 2) * TOTP_STEP_SECONDS * 1000
                async with self._redis.guard():
                    claimed = await self._redis.client.set(
                        self._keys.totp_step(staff_id, step), b"1", nx=True, pxat=forget_at_ms
                    )
                if claimed:
                    return True
        return False

    # -- single sign-on -----------------------------------------------------------------

    async def sign_in_with_sso(
        self, issuer: str, subject: str, email: str, name: str, role: Role
    ) -> Staff:
        """The staff member of a workforce sign-in, made or updated with the role the
        provider gives now (`StaffExists` if a built-in staff member has the address;
        `InvalidCredentials` if the person was disabled here)."""
        async with self._db.transaction() as conn:
            row = await sql.upsert_sso(conn, issuer, subject, email, name, role)
            staff = Staff.of(row)
            if staff.disabled:
                raise InvalidCredentials("This staff member is disabled.")
            await self._audit.insert(
                conn, AuditEvent(EventType.STAFF_SIGNED_IN, agent=staff.as_agent(), reason="sso")
            )
        return staff

    async def end_sso_sessions(self, issuer: str, subject: str) -> None:
        """End the sessions of a person the workforce provider no longer gives a role."""
        async with self._db.connection() as conn:
            await sql.end_sso_sessions(conn, issuer, subject)

    async def open_session(self, staff_id: UUID) -> str:
        """A session for a staff member whose sign-in was recorded already (single sign-on)."""
        staff = await self.get(staff_id)
        if staff is None or staff.disabled:
            raise InvalidCredentials("This staff member is disabled.")
        return await self._open_session(staff, recorded=True)

    # -- sessions -----------------------------------------------------------------------

    def _session_redis_key(self, token: str) -> str:
        return self._keys.staff_session(keyed_digest(self._session_key, token).hex())

    async def _open_session(self, staff: Staff, *, recorded: bool = False) -> str:
        token = new_token(STAFF_SESSION_PREFIX)
        async with self._redis.guard():
            await self._redis.client.set(
                self._session_redis_key(token),
                staff.id.bytes + _EPOCH.pack(staff.epoch),
                ex=self.session_ttl_seconds,
            )
        if not recorded:
            async with self._db.transaction() as conn:
                await sql.signed_in(conn, staff.id)
                await self._audit.insert(
                    conn,
                    AuditEvent(
                        EventType.STAFF_SIGNED_IN, agent=staff.as_agent(), reason="password"
                    ),
                )
        return token

    async def session(self, token: str) -> Staff | None:
        """The signed-in staff member, or None (unknown or expired session, disabled, or
        the role changed since)."""
        if not token.startswith(STAFF_SESSION_PREFIX) or len(token) > 128:
            return None
        async with self._redis.guard():
            value = await self._redis.client.get(self._session_redis_key(token))
        if not isinstance(value, bytes) or len(value) != 16 + _EPOCH.size:
            return None
        staff = await self.get(UUID(bytes=value[:16]))
        if staff is None or staff.disabled or staff.epoch != _EPOCH.unpack(value[16:])[0]:
            return None
        return staff

    async def end_session(self, token: str) -> None:
        if token.startswith(STAFF_SESSION_PREFIX) and len(token) <= 128:
            async with self._redis.guard():
                await self._redis.client.delete(self._session_redis_key(token))
