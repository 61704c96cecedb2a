"""Accounts and password sign-in."""

from __future__ import annotations

from uuid import UUID

from service.errors import InvalidCredentials, NotFound
from service.models import Account
from service.passwords import PasswordHasher
from service.persistence import accounts as sql
from service.persistence.db import Database


def normalize_email(email: str) -> str:
    """One spelling per mailbox for lookups (addresses are matched case-insensitively)."""
    return email.strip().lower()


def _could_be_stored(email: str) -> bool:
    # PostgreSQL text cannot hold NUL (asyncpg would raise: a 500, found by schemathesis), and
    # sign-up never stores such an address, so no query is needed to know it is unknown.
    return "\x00" not in email


class AccountService:
    def __init__(self, db: Database, hasher: PasswordHasher) -> None:
        self._db = db
        self._hasher = hasher

    async def register(self, email: str, password: str) -> Account:
        password_hash = await self._hasher.hash(password)
        async with self._db.connection() as conn:
            row = await sql.create_account(conn, normalize_email(email), password_hash)
        return Account(row["id"], row["email"], row["created_at"])

    async def authenticate(self, email: str, password: str) -> UUID:
        """The account's id, or `InvalidCredentials` — the same answer, after the same argon2
        work, for an unknown email and a wrong password."""
        row = None
        if _could_be_stored(email):
            async with self._db.connection() as conn:
                row = await sql.account_by_email(conn, normalize_email(email))
        stored_hash = row["password_hash"] if row is not None else None
        if not await self._hasher.verify(password, stored_hash) or row is None:
            raise InvalidCredentials()
        account_id: UUID = row["id"]
        return account_id

    async def get(self, account_id: UUID) -> Account:
        async with self._db.connection() as conn:
            row = await sql.account_by_id(conn, account_id)
        if row is None:
            raise NotFound()
        return Account(row["id"], row["email"], row["created_at"])

    async def id_by_email(self, email: str) -> UUID | None:
        if not _could_be_stored(email):
            return None
        async with self._db.connection() as conn:
            return await sql.account_id_by_email(conn, normalize_email(email))
