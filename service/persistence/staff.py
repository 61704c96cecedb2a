"""SQL of support staff."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from service.errors import StaffExists
from service.persistence.db import Connection

_COLUMNS = """id, email, name, role, source, disabled_at, last_sign_in_at, session_epoch,
    created_at, password_hash, totp_secret, totp_enabled_at"""


async def add(
    conn: Connection,
    email: str,
    name: str,
    role: str,
    *,
    setup_digest: bytes,
    setup_expires_at: datetime,
) -> asyncpg.Record:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO staff (email, name, role, source, setup_digest, setup_expires_at)
                VALUES ($1, $2, $3, 'builtin', $4, $5) RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
            email,
            name,
            role,
            setup_digest,
            setup_expires_at,
        )
    except asyncpg.UniqueViolationError as exc:
        raise StaffExists() from exc
    if row is None:
        raise RuntimeError("INSERT returned no row")
    return row


async def by_id(conn: Connection, staff_id: UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE id = $1", staff_id)  # noqa: S608 (constant)


async def by_email(conn: Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {_COLUMNS} FROM staff WHERE email = $1", email)  # noqa: S608 (constant)


async def list_all(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {_COLUMNS} FROM staff ORDER BY email")  # noqa: S608 (constant)


async def by_setup_digest(conn: Connection, digest: bytes) -> asyncpg.Record | None:
    """The staff member whose set-up link this is, while it is unused and not expired."""
    return await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM staff
            WHERE setup_digest = $1 AND setup_expires_at > now() AND disabled_at IS NULL""",  # noqa: S608 (constant)
        digest,
    )


async def set_credentials(
    conn: Connection, staff_id: UUID, password_hash: str, totp_secret: bytes
) -> None:
    """The password and a pending TOTP secret chosen on the set-up page (not yet confirmed)."""
    await conn.execute(
        """UPDATE staff SET password_hash = $2, totp_secret = $3, totp_enabled_at = NULL
           WHERE id = $1""",
        staff_id,
        password_hash,
        totp_secret,
    )


async def finish_setup(conn: Connection, staff_id: UUID, digest: bytes) -> bool:
    """Turn the confirmed TOTP secret on and spend the set-up link; False if it was spent."""
    status = await conn.execute(
        """UPDATE staff SET totp_enabled_at = now(), setup_digest = NULL, setup_expires_at = NULL
           WHERE id = $1 AND setup_digest = $2 AND totp_secret IS NOT NULL""",
        staff_id,
        digest,
    )
    return status == "UPDATE 1"


async def new_setup_link(
    conn: Connection, staff_id: UUID, digest: bytes, expires_at: datetime
) -> None:
    await conn.execute(
        "UPDATE staff SET setup_digest = $2, setup_expires_at = $3 WHERE id = $1",
        staff_id,
        digest,
        expires_at,
    )


async def update(
    conn: Connection, staff_id: UUID, *, role: str | None, disabled: bool | None
) -> asyncpg.Record | None:
    """Change role and/or disabled state; the session epoch moves when either changes, which
    ends every session made before. None when there is no such staff member."""
    return await conn.fetchrow(
        f"""UPDATE staff SET
                role = coalesce($2, role),
                disabled_at = CASE WHEN $3::boolean IS NULL THEN disabled_at
                                   WHEN $3 THEN coalesce(disabled_at, now())
                                   ELSE NULL END,
                session_epoch = session_epoch + CASE
                    WHEN ($2::text IS NOT NULL AND $2 <> role)
                      OR ($3::boolean IS NOT NULL AND $3 <> (disabled_at IS NOT NULL))
                    THEN 1 ELSE 0 END
            WHERE id = $1 RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
        staff_id,
        role,
        disabled,
    )


async def active_admins(conn: Connection) -> list[UUID]:
    """Ids of enabled admins, locked so that two demotions cannot both see a second admin."""
    rows = await conn.fetch(
        "SELECT id FROM staff WHERE role = 'admin' AND disabled_at IS NULL FOR UPDATE"
    )
    return [row["id"] for row in rows]


async def signed_in(conn: Connection, staff_id: UUID) -> None:
    await conn.execute("UPDATE staff SET last_sign_in_at = now() WHERE id = $1", staff_id)


async def upsert_sso(
    conn: Connection, issuer: str, subject: str, email: str, name: str, role: str
) -> asyncpg.Record:
    """The staff member of a single sign-on (made on first sight); the role is the one the
    provider gives now, and a changed role ends the person's older sessions."""
    try:
        row = await _upsert_sso(conn, issuer, subject, email, name, role)
    except asyncpg.UniqueViolationError as exc:
        raise StaffExists("A built-in staff member has this address.") from exc
    if row is None:
        raise RuntimeError("INSERT returned no row")
    return row


async def _upsert_sso(
    conn: Connection, issuer: str, subject: str, email: str, name: str, role: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""INSERT INTO staff (email, name, role, source, sso_issuer, sso_subject,
                               last_sign_in_at)
            VALUES ($1, $2, $3, 'sso', $4, $5, now())
            ON CONFLICT (sso_issuer, sso_subject) DO UPDATE SET
                email = excluded.email, name = excluded.name, role = excluded.role,
                last_sign_in_at = now(),
                session_epoch = staff.session_epoch
                    + CASE WHEN staff.role <> excluded.role THEN 1 ELSE 0 END
            RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
        email,
        name,
        role,
        issuer,
        subject,
    )


async def end_sso_sessions(conn: Connection, issuer: str, subject: str) -> None:
    await conn.execute(
        """UPDATE staff SET session_epoch = session_epoch + 1
           WHERE sso_issuer = $1 AND sso_subject = $2""",
        issuer,
        subject,
    )


async def reissue_setup(
    conn: Connection, staff_id: UUID, digest: bytes, expires_at: datetime
) -> asyncpg.Record | None:
    """A new set-up link for a built-in staff member: their password and authenticator are
    cleared (they set both up again) and their sessions end. None unless built-in."""
    return await conn.fetchrow(
        f"""UPDATE staff SET setup_digest = $2, setup_expires_at = $3, password_hash = NULL,
                totp_secret = NULL, totp_enabled_at = NULL, session_epoch = session_epoch + 1
            WHERE id = $1 AND source = 'builtin' RETURNING {_COLUMNS}""",  # noqa: S608 (constant)
        staff_id,
        digest,
        expires_at,
    )
