"""SQL of customers' passkeys."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.persistence.db import Connection


async def add(
    conn: Connection,
    account_id: UUID,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO passkeys (account_id, credential_id, public_key, sign_count, name)
           VALUES ($1, $2, $3, $4, $5)
           RETURNING id, name, created_at, last_used_at""",
        account_id,
        credential_id,
        public_key,
        sign_count,
        name,
    )
    if row is None:
        raise RuntimeError("INSERT returned no row")
    return row


async def credential_ids(conn: Connection, account_id: UUID) -> list[bytes]:
    rows = await conn.fetch("SELECT credential_id FROM passkeys WHERE account_id = $1", account_id)
    return [bytes(row["credential_id"]) for row in rows]


async def of_account(conn: Connection, account_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, name, created_at, last_used_at FROM passkeys
           WHERE account_id = $1 ORDER BY created_at""",
        account_id,
    )


async def remove(conn: Connection, account_id: UUID, passkey_id: UUID) -> str | None:
    name: str | None = await conn.fetchval(
        "DELETE FROM passkeys WHERE id = $1 AND account_id = $2 RETURNING name",
        passkey_id,
        account_id,
    )
    return name


async def by_credential_id(conn: Connection, credential_id: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT p.id, p.account_id, p.public_key, p.sign_count FROM passkeys p
           JOIN accounts a ON a.id = p.account_id AND a.deleted_at IS NULL
           WHERE p.credential_id = $1""",
        credential_id,
    )


async def used(conn: Connection, passkey_id: UUID, sign_count: int) -> bool:
    """Record a sign-in's counter; False if a concurrent sign-in recorded this count or a
    higher one first (a cloned authenticator). Authenticators that keep no counter send 0."""
    status = await conn.execute(
        """UPDATE passkeys SET sign_count = $2, last_used_at = now()
           WHERE id = $1 AND (sign_count < $2 OR ($2 = 0 AND sign_count = 0))""",
        passkey_id,
        sign_count,
    )
    return status == "UPDATE 1"
