"""Accounts and password sign-in."""

from __future__ import annotations

import logging
import re
from uuid import UUID

from service.errors import InvalidCredentials, NotFound, Unavailable
from service.keys import keyed_digest
from service.models import Account
from service.passwords import PasswordHasher
from service.persistence import accounts as sql
from service.persistence.db import Database
from service.redis_store import RedisStore, account_id_from_tag, account_tag

log = logging.getLogger(__name__)

# Email -> account, cached in Redis for agent verifications (an address never changes
# owner here: no renames, no deletions). Signing in fills the entry, so the agent's lookup a
# few minutes later is a hit. The value is the account's tag (`redis_store.account_tag`), the
# form its keys are named by, so the PIN service's verification script can name them from
# it. Unknown emails are cached too (as an empty value), so known and unknown addresses take
# the same path and time; creating an account overwrites its entry, and lookups fill with
# SET NX so a stale miss cannot overwrite it.
EMAIL_CACHE_SECONDS = 3600
UNKNOWN_EMAIL_CACHE_SECONDS = 300
_NO_ACCOUNT = b""
_UNREAD = object()  # `id_by_email`: the cache entry was not read by the caller


def email_cache_value(account_id: UUID) -> bytes:
    """What the email's cache entry holds for its account."""
    return account_tag(account_id).encode()


def _cached_account(value: bytes) -> UUID | None:
    """The account of a cache entry's value (None: cached as no account); ValueError if it
    is not one that `email_cache_value` writes."""
    return account_id_from_tag(value.decode("ascii")) if value else None


def normalize_email(email: str) -> str:
    """One spelling per mailbox for lookups (addresses are matched case-insensitively)."""
    return email.strip().lower()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> bool:
    """False for text Postgres cannot store or argon2 cannot hash (NUL, lone surrogates)."""
    return _UNSTORABLE.search(text) is None


class AccountService:
    def __init__(
        self, db: Database, hasher: PasswordHasher, redis: RedisStore, lookup_key: bytes
    ) -> None:
        self._db = db
        self.hasher = hasher
        self._redis = redis
        self._lookup_key = lookup_key

    def _email_cache_key(self, normalized_email: str) -> str:
        digest = keyed_digest(self._lookup_key, "account-by-email", normalized_email)
        return self._redis.keys.account_by_email(digest.hex())

    async def register(self, email: str, password: str) -> Account:
        password_hash = await self.hasher.hash(password)
        async with self._db.connection() as conn:
            row = await sql.create_account(conn, normalize_email(email), password_hash)
        account = Account(row["id"], row["email"], row["created_at"])
        await self._remember(account.email, account.id)  # replaces a cached "no such account"
        return account

    async def _remember(self, normalized_email: str, account_id: UUID) -> None:
        try:
            async with self._redis.guard():
                await self._redis.client.set(
                    self._email_cache_key(normalized_email),
                    email_cache_value(account_id),
                    ex=EMAIL_CACHE_SECONDS,
                )
        except Unavailable:
            # The account exists in Postgres; a later lookup finds it there.
            log.warning("could not cache an account id")

    async def authenticate(self, email: str, password: str) -> UUID:
        """The account's id, or `InvalidCredentials` — the same answer, after the same argon2
        work, for an unknown email and a wrong password."""
        if not storable_text(email) or not storable_text(password):
            # Cannot be an account's email or password (and cannot be hashed): same answer.
            raise InvalidCredentials()
        async with self._db.connection() as conn:
            row = await sql.account_by_email(conn, normalize_email(email))
        stored_hash = row["password_hash"] if row is not None else None
        if not await self.hasher.verify(password, stored_hash) or row is None:
            raise InvalidCredentials()
        account_id: UUID = row["id"]
        await self._remember(row["email"], account_id)
        return account_id

    async def get(self, account_id: UUID) -> Account:
        async with self._db.connection() as conn:
            row = await sql.account_by_id(conn, account_id)
        if row is None:
            raise NotFound()
        return Account(row["id"], row["email"], row["created_at"], row["mfa_enabled"])

    def email_cache_key(self, email: str) -> str | None:
        """The Redis key `id_by_email` reads first (None: no lookup happens at all), so a
        caller can read it in a round trip it makes anyway and pass what it got as `cached`."""
        if not storable_text(email):
            return None
        return self._email_cache_key(normalize_email(email))

    async def id_by_email(
        self, email: str, cached: object = _UNREAD, *, cache_key: str | None = None
    ) -> UUID | None:
        """The account of `email`, or None. A caller that read the cache entry passes what
        it read as `cached`, and the key it read (`email_cache_key`) as `cache_key`."""
        if not storable_text(email):
            return None  # PostgreSQL would refuse it (a 500, found by schemathesis)
        normalized = normalize_email(email)
        if cache_key is None:
            cache_key = self._email_cache_key(normalized)
        if cached is _UNREAD:
            async with self._redis.guard():
                cached = await self._redis.client.get(cache_key)
        if isinstance(cached, bytes):
            try:
                return _cached_account(cached)
            except ValueError:
                pass  # not an entry this service writes (damaged): look the account up
        async with self._db.connection() as conn:
            account_id = await sql.account_id_by_email(conn, normalized)
        async with self._redis.guard():
            await self._redis.client.set(
                cache_key,
                email_cache_value(account_id) if account_id is not None else _NO_ACCOUNT,
                ex=EMAIL_CACHE_SECONDS if account_id is not None else UNKNOWN_EMAIL_CACHE_SECONDS,
                nx=True,
            )
        return account_id
