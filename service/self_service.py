"""Customers manage their own account: change or reset the password, delete the account.

A reset link is made when its email is sent, from the request's audit row: the account, the
row's id and the time, under a MAC. Nothing secret is stored: Redis holds only which request
is the account's newest (for 30 minutes), so only the newest link works, and only once."""

from __future__ import annotations

import base64
import hmac
import logging
import struct
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

from service.accounts import AccountService, normalize_email, storable_text
from service.audit import AuditLog
from service.errors import (
    InvalidLink,
    NoPassword,
    NotFound,
    RateLimited,
    RecentSignInRequired,
    WrongPassword,
)
from service.events import EventBus
from service.limits import Limit, RateLimiter
from service.models import AuditEvent, EventType
from service.password_policy import check_new_password
from service.passwords import PasswordHasher
from service.persistence import accounts as sql
from service.persistence.db import Database
from service.pins import PinService
from service.redis_store import RedisStore
from service.sessions import SessionStore

log = logging.getLogger(__name__)

RESET_LINK_SECONDS = 30 * 60
RECENT_SIGN_IN_SECONDS = 5 * 60
# Reset emails per account, so nobody can fill a stranger's mailbox from the sign-in page.
RESET_EMAILS_PER_HOUR = Limit("password_reset_per_account", 5, 3600)


class ResetLinks:
    PREFIX = "prt_"
    _LAYOUT = struct.Struct(">16s16sQ")  # account id, request (audit row) id, issued (unix s)

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._public_url = public_url

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, "sha256").digest()[:16]

    def token(self, account_id: UUID, request_id: UUID, issued: float) -> str:
        body = self._LAYOUT.pack(account_id.bytes, request_id.bytes, int(issued))
        return self.PREFIX + base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")

    def link(self, account_id: UUID, request_id: UUID, issued: float) -> str:
        # In the fragment: browsers never send it, so no server or proxy logs it.
        return (
            f"{self._public_url}/reset/confirm#token={self.token(account_id, request_id, issued)}"
        )

    def check(self, token: str) -> tuple[UUID, UUID] | None:
        """The account and the request a live link names, or None."""
        if not token.startswith(self.PREFIX) or len(token) > 100:
            return None
        raw = token[len(self.PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return None
        if len(data) != self._LAYOUT.size + 16:
            return None
        body, mac = data[: self._LAYOUT.size], data[self._LAYOUT.size :]
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        account, request, issued = self._LAYOUT.unpack(body)
        if issued + RESET_LINK_SECONDS < time.time():
            return None
        return UUID(bytes=account), UUID(bytes=request)


@dataclass(frozen=True)
class Reauthentication:
    """What a signed-in caller offers before a destructive change: a password, or how long
    ago they signed in."""

    password: str | None
    signed_in_seconds_ago: float | None


class SelfService:
    def __init__(
        self,
        db: Database,
        redis: RedisStore,
        audit: AuditLog,
        accounts: AccountService,
        hasher: PasswordHasher,
        sessions: SessionStore,
        pins: PinService,
        events: EventBus,
        limits: RateLimiter,
        links: ResetLinks,
    ) -> None:
        self._db = db
        self._redis = redis
        self._audit = audit
        self._accounts = accounts
        self._hasher = hasher
        self._sessions = sessions
        self._pins = pins
        self._events = events
        self._limits = limits
        self.links = links
        self._take = redis.script("take_if_equal")

    async def _row(self, account_id: UUID) -> dict[str, object]:
        async with self._db.connection() as conn:
            row = await sql.account_by_id(conn, account_id)
        if row is None or row["deleted_at"] is not None:
            raise NotFound()
        return dict(row)

    async def _check_current(self, row: dict[str, object], password: str, address: str) -> None:
        """The current password, under the sign-in limits (a wrong one counts as a failed
        sign-in): `WrongPassword`."""
        email = str(row["email"] or row["id"])
        attempt = await self._limits.sign_in(address=address, email=email, device=None)
        stored = row["password_hash"]
        right = storable_text(password) and await self._hasher.verify(
            password, stored if isinstance(stored, str) else None
        )
        if not right:
            raise WrongPassword()
        await self._limits.signed_in(attempt)

    async def change_password(
        self, account_id: UUID, current: str, new: str, *, keep: str | None, address: str
    ) -> None:
        row = await self._row(account_id)
        if row["password_hash"] is None:
            raise NoPassword()
        await self._check_current(row, current, address)
        check_new_password(new, email=str(row["email"] or ""), field="new_password")
        password_hash = await self._hasher.hash(new)
        async with self._db.transaction() as conn:
            await sql.set_password(conn, account_id, password_hash)
            await self._audit.insert(conn, AuditEvent(EventType.PASSWORD_CHANGED, account_id))
        await self._sessions.revoke_all(account_id, keep=keep)

    async def request_reset(self, email: str) -> None:
        """Send a reset link if an account has the address; nothing otherwise. Run after the
        answer (202 either way), so neither answer nor time tells the two apart."""
        account_id = await self._accounts.id_by_email(normalize_email(email))
        if account_id is None:
            return
        try:
            await self._limits.hit(RESET_EMAILS_PER_HOUR, str(account_id))
        except RateLimited:
            log.info("password reset emails for an account are over their hourly limit")
            return
        request_id = uuid.uuid4()
        async with self._redis.guard():
            await self._redis.client.set(
                self._redis.keys.password_reset(account_id),
                request_id.hex,
                ex=RESET_LINK_SECONDS,
            )
        await self._audit.record(
            AuditEvent(EventType.PASSWORD_RESET_REQUESTED, account_id, id=request_id)
        )

    async def confirm_reset(self, token: str, new: str) -> None:
        checked = self.links.check(token)
        if checked is None:
            raise InvalidLink()
        account_id, request_id = checked
        row = await self._row(account_id)
        # 422 leaves the link usable.
        check_new_password(new, email=str(row["email"] or ""), field="new_password")
        async with self._redis.guard():
            taken = await self._take(
                keys=[self._redis.keys.password_reset(account_id)], args=[request_id.hex]
            )
        if not taken:
            raise InvalidLink()
        password_hash = await self._hasher.hash(new)
        async with self._db.transaction() as conn:
            await sql.set_password(conn, account_id, password_hash)
            await self._audit.insert(conn, AuditEvent(EventType.PASSWORD_RESET, account_id))
        await self._sessions.revoke_all(account_id)
        await self._pins.revoke(account_id)
        await self._events.end_streams(account_id)

    async def delete_account(
        self, account_id: UUID, proof: Reauthentication, *, address: str
    ) -> None:
        """Delete the account: its sessions, PIN state, 2FA, passkeys and links to a provider
        go, its address is freed; its audit rows stay, naming a pseudonym."""
        row = await self._row(account_id)
        if row["password_hash"] is not None:
            if proof.password is None:
                raise WrongPassword("password")
            try:
                await self._check_current(row, proof.password, address)
            except WrongPassword:
                raise WrongPassword("password") from None
        elif proof.signed_in_seconds_ago is None or (
            proof.signed_in_seconds_ago > RECENT_SIGN_IN_SECONDS
        ):
            raise RecentSignInRequired()
        async with self._db.transaction() as conn:
            # The row first: its notice keeps the address the account is about to lose.
            await self._audit.insert(conn, AuditEvent(EventType.ACCOUNT_DELETED, account_id))
            await sql.forget(conn, account_id, f"deleted-{account_id.hex[:12]}")
        await self._pins.revoke(account_id)
        await self._sessions.revoke_all(account_id)
        await self._events.end_streams(account_id)
        keys = self._redis.keys
        async with self._redis.guard():
            await self._redis.client.delete(*keys.pin_state(account_id))
            await self._redis.client.delete(keys.contact(account_id))
