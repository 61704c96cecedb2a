"""SQL of accounts."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.errors import EmailTaken
from service.persistence.db import Connection

_COLUMNS = "id, email, password_hash, created_at, deleted_at"


async def create_account(
    conn: Connection, email: str, email_skeleton: str, password_hash: str
) -> asyncpg.Record:
    """The new account's row; `EmailTaken` when its email, or its email's confusable skeleton
    (a look-alike of an existing address), is an existing account's: one answer for both."""
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO accounts (email, email_skeleton, password_hash)
                VALUES ($1, $2, $3) RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
            email,
            email_skeleton,
            password_hash,
        )
    except asyncpg.UniqueViolationError as exc:
        raise EmailTaken() from exc
    if row is None:  # INSERT ... RETURNING yields the row
        raise RuntimeError("INSERT returned no row")
    return row


async def account_by_email(conn: Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM accounts WHERE email = $1", email)  # noqa: S608 (constant)


async def account_by_id(conn: Connection, account_id: UUID) -> asyncpg.Record | None:
    """The account with `mfa_enabled` (two-factor sign-in on) and `linked` (to a provider)."""
    return await conn.fetchrow(
        f"""SELECT {_COLUMNS}, EXISTS (
                SELECT 1 FROM account_totp t
                WHERE t.account_id = accounts.id AND t.enabled_at IS NOT NULL
            ) AS mfa_enabled, EXISTS (
                SELECT 1 FROM account_identities i WHERE i.account_id = accounts.id
            ) AS linked
            FROM accounts WHERE id = $1""",  # noqa: S608 (constant)
        account_id,
    )


async def account_id_by_email(conn: Connection, email: str) -> UUID | None:
    account_id: UUID | None = await conn.fetchval("SELECT id FROM accounts WHERE email = $1", email)
    return account_id


async def set_password(conn: Connection, account_id: UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE accounts SET password_hash = $2 WHERE id = $1", account_id, password_hash
    )


async def forget(conn: Connection, account_id: UUID, pseudonym: str) -> None:
    """Delete an account but its row, which the audit log names: nothing of the person stays
    (address, password, second factors, passkeys, links to a provider); the address is free
    for a new account."""
    for table in ("account_identities", "account_totp", "account_recovery_codes", "passkeys"):
        await conn.execute(f"DELETE FROM {table} WHERE account_id = $1", account_id)  # noqa: S608 (constant names)
    await conn.execute(
        """UPDATE accounts SET email = NULL, email_skeleton = NULL, password_hash = NULL,
               deleted_at = now(), pseudonym = $2
           WHERE id = $1""",
        account_id,
        pseudonym,
    )
