"""Accounts and password sign-in."""

from __future__ import annotations

import re
from uuid import UUID

from service import emails
from service.errors import EmailConfusable, EmailInvalid, InvalidCredentials, NotFound
from service.models import Account
from service.password_policy import check_new_password
from service.passwords import PasswordHasher
from service.persistence import accounts as sql
from service.persistence.db import Database
from service.persistence.notices import set_language


def normalize_email(email: str) -> str:
    """The spelling to look an address up by (and to key its rate limits by): for any valid
    address, `service.emails.normalize_email` (NFKC, IDNA, case-folded), the one spelling
    stored. Never raises: input that is no valid address comes back stripped, a spelling no
    account has (every stored address is its own normalization), so sign-in and verification
    find no account and answer as for an unknown one. Sign-up uses the strict function."""
    try:
        return emails.normalize_email(email)
    except emails.InvalidEmailAddress:
        return email.strip()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> bool:
    """False for text Postgres cannot store or argon2 cannot hash (NUL, lone surrogates)."""
    return _UNSTORABLE.search(text) is None


class AccountService:
    def __init__(self, db: Database, hasher: PasswordHasher) -> None:
        self._db = db
        self.hasher = hasher

    async def register(self, email: str, password: str) -> Account:
        try:
            address = emails.normalize_email(email)
        except emails.InvalidEmailAddress as exc:
            raise EmailInvalid(exc.reason) from None
        if emails.mixes_confusable_scripts(address):
            raise EmailConfusable()
        check_new_password(password, email=address)  # before any hashing work
        password_hash = await self.hasher.hash(password)
        async with self._db.connection() as conn:
            # A look-alike of an existing address (same skeleton) is refused as taken.
            row = await sql.create_account(
                conn, address, emails.email_skeleton(address), password_hash
            )
        return Account(row["id"], row["email"], row["created_at"])

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
        return account_id

    async def get(self, account_id: UUID) -> Account:
        async with self._db.connection() as conn:
            row = await sql.account_by_id(conn, account_id)
        if row is None:
            raise NotFound()
        methods = ("password",) * (row["password_hash"] is not None) + ("oidc",) * row["linked"]
        return Account(row["id"], row["email"], row["created_at"], row["mfa_enabled"], methods)

    async def id_by_email(self, email: str) -> UUID | None:
        """The account of `email`, or None. Always a PostgreSQL lookup by a unique index, so
        a known and an unknown address take the same path and time."""
        if not storable_text(email):
            return None  # PostgreSQL refuses NUL and lone surrogates; no account has them
        async with self._db.connection() as conn:
            return await sql.account_id_by_email(conn, normalize_email(email))

    async def remember_language(self, account_id: UUID, accept_language: str | None) -> None:
        """The language of the account's last sign-in (its notices are written in it)."""
        language = pick_language(accept_language)
        async with self._db.connection() as conn:
            await set_language(conn, account_id, language)


LANGUAGES = ("en", "sv")


def pick_language(accept_language: str | None) -> str:
    """The first of our languages the Accept-Language header names; English otherwise."""
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "en"
