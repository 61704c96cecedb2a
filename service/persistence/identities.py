"""SQL of accounts linked to an OpenID Connect provider's subjects."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.persistence.db import Connection


async def account_id_by_subject(conn: Connection, issuer: str, subject: str) -> UUID | None:
    account_id: UUID | None = await conn.fetchval(
        "SELECT account_id FROM account_identities WHERE issuer = $1 AND subject = $2",
        issuer,
        subject,
    )
    return account_id


async def link_subject(
    conn: Connection,
    issuer: str,
    subject: str,
    *,
    link_email: str | None,
    email: str | None,
    email_skeleton: str | None,
) -> UUID:
    """The account linked to (`issuer`, `subject`), linked or made on first sight in one
    transaction: the existing account whose address is `link_email`, else a new account with
    `email` when that address (and its look-alikes) is free, else a new account without one.
    A concurrent first sign-in of the same subject ends on the same account."""
    existing = await account_id_by_subject(conn, issuer, subject)
    if existing is not None:
        return existing  # every sign-in after the first: one query, no transaction
    try:
        return await _link(conn, issuer, subject, link_email, email, email_skeleton)
    except _LostRace:
        # A concurrent first sign-in linked the subject first; this one's account was undone.
        winner = await account_id_by_subject(conn, issuer, subject)
        if winner is None:
            raise RuntimeError("a linked identity vanished") from None
        return winner


async def _link(
    conn: Connection,
    issuer: str,
    subject: str,
    link_email: str | None,
    email: str | None,
    email_skeleton: str | None,
) -> UUID:
    async with conn.transaction():
        existing = await account_id_by_subject(conn, issuer, subject)
        if existing is not None:
            return existing
        account_id: UUID | None = None
        if link_email is not None:
            account_id = await conn.fetchval("SELECT id FROM accounts WHERE email = $1", link_email)
        if account_id is None:
            account_id = await _new_account(conn, email, email_skeleton)
        linked: UUID | None = await conn.fetchval(
            """INSERT INTO account_identities (issuer, subject, account_id) VALUES ($1, $2, $3)
               ON CONFLICT (issuer, subject) DO NOTHING RETURNING account_id""",
            issuer,
            subject,
            account_id,
        )
        if linked is None:
            raise _LostRace()  # rolls this transaction back
    return linked


class _LostRace(Exception):
    pass


async def _new_account(conn: Connection, email: str | None, skeleton: str | None) -> UUID:
    if email is not None:
        # The address (or a look-alike of it) may be taken: then the account has none.
        async with conn.transaction():
            try:
                made: UUID = await conn.fetchval(
                    "INSERT INTO accounts (email, email_skeleton) VALUES ($1, $2) RETURNING id",
                    email,
                    skeleton,
                )
                return made
            except asyncpg.UniqueViolationError:
                pass
    return await conn.fetchval("INSERT INTO accounts DEFAULT VALUES RETURNING id")  # type: ignore[no-any-return]
