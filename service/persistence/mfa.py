"""SQL of two-factor sign-in: the TOTP authenticator and recovery codes of each account."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from service.persistence.db import Connection


async def start_enrollment(conn: Connection, account_id: UUID, secret_encrypted: bytes) -> bool:
    """Store a pending secret (replacing an earlier pending one); False if 2FA is already on."""
    row = await conn.fetchrow(
        """INSERT INTO account_totp (account_id, secret_encrypted) VALUES ($1, $2)
           ON CONFLICT (account_id) DO UPDATE
               SET secret_encrypted = EXCLUDED.secret_encrypted, created_at = now()
               WHERE account_totp.enabled_at IS NULL
           RETURNING account_id""",
        account_id,
        secret_encrypted,
    )
    return row is not None


async def totp_state(conn: Connection, account_id: UUID) -> asyncpg.Record | None:
    """`secret_encrypted` and `enabled_at` (NULL while pending), or None without enrollment."""
    return await conn.fetchrow(
        "SELECT secret_encrypted, enabled_at FROM account_totp WHERE account_id = $1", account_id
    )


async def is_enabled(conn: Connection, account_id: UUID) -> bool:
    enabled: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM account_totp
                          WHERE account_id = $1 AND enabled_at IS NOT NULL)""",
        account_id,
    )
    return enabled


async def enable(
    conn: Connection, account_id: UUID, secret_encrypted: bytes, code_hashes: Sequence[bytes]
) -> datetime | None:
    """Turn 2FA on for exactly the pending secret that was checked, with fresh recovery codes.

    None if that secret is no longer the pending one (enabled or replaced meanwhile)."""
    enabled_at: datetime | None = await conn.fetchval(
        """UPDATE account_totp SET enabled_at = now()
           WHERE account_id = $1 AND enabled_at IS NULL AND secret_encrypted = $2
           RETURNING enabled_at""",
        account_id,
        secret_encrypted,
    )
    if enabled_at is None:
        return None
    await _replace_recovery_codes(conn, account_id, code_hashes)
    return enabled_at


async def replace_recovery_codes(
    conn: Connection, account_id: UUID, code_hashes: Sequence[bytes]
) -> bool:
    """New recovery codes for an account with 2FA on (the old ones stop working)."""
    enabled = await conn.fetchval(
        """SELECT 1 FROM account_totp WHERE account_id = $1 AND enabled_at IS NOT NULL
           FOR UPDATE""",
        account_id,
    )
    if enabled is None:
        return False
    await _replace_recovery_codes(conn, account_id, code_hashes)
    return True


async def _replace_recovery_codes(
    conn: Connection, account_id: UUID, code_hashes: Sequence[bytes]
) -> None:
    await conn.execute("DELETE FROM account_recovery_codes WHERE account_id = $1", account_id)
    await conn.executemany(
        "INSERT INTO account_recovery_codes (account_id, code_hash) VALUES ($1, $2)",
        [(account_id, code_hash) for code_hash in code_hashes],
    )


async def disable(conn: Connection, account_id: UUID) -> bool:
    """Remove the authenticator and every recovery code; False if 2FA was not on."""
    removed = await conn.fetchval(
        """DELETE FROM account_totp WHERE account_id = $1 AND enabled_at IS NOT NULL
           RETURNING account_id""",
        account_id,
    )
    await conn.execute("DELETE FROM account_recovery_codes WHERE account_id = $1", account_id)
    return removed is not None


async def use_recovery_code(conn: Connection, account_id: UUID, code_hash: bytes) -> bool:
    """Mark an unused code used; True for exactly one of any concurrent uses of it."""
    used = await conn.fetchval(
        """UPDATE account_recovery_codes SET used_at = now()
           WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL
             AND EXISTS (SELECT 1 FROM account_totp
                         WHERE account_id = $1 AND enabled_at IS NOT NULL)
           RETURNING id""",
        account_id,
        code_hash,
    )
    return used is not None


async def recovery_codes_left(conn: Connection, account_id: UUID) -> int:
    left: int = await conn.fetchval(
        "SELECT count(*) FROM account_recovery_codes WHERE account_id = $1 AND used_at IS NULL",
        account_id,
    )
    return left
