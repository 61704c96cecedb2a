"""SQL of the notices outbox."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.persistence.db import Connection


async def claim(
    conn: Connection, limit: int, lease_seconds: int, channels: list[str]
) -> list[asyncpg.Record]:
    """Due notices of the channels this instance can deliver, leased to it (`FOR UPDATE
    SKIP LOCKED`: instances never claim the same row), with what their event says."""
    return await conn.fetch(
        """WITH claimed AS (
               UPDATE notices n
               SET lease_until = now() + make_interval(secs => $2), attempts = attempts + 1
               WHERE n.id IN (
                   SELECT id FROM notices
                   WHERE status = 'pending' AND next_attempt_at <= now()
                     AND (lease_until IS NULL OR lease_until < now())
                     AND channel = ANY($3::text[])
                   ORDER BY next_attempt_at
                   LIMIT $1
                   FOR UPDATE SKIP LOCKED)
               RETURNING n.id, n.event_id, n.channel, n.attempts, n.give_up_at, n.to_address
           )
           SELECT c.id, c.event_id, c.channel, c.attempts, c.give_up_at, e.type, e.occurred_at,
                  e.agent_name, e.case_ref, e.reason, e.account_id,
                  coalesce(c.to_address, a.email) AS email, a.language,
                  EXISTS (SELECT 1 FROM audit_voids v WHERE v.event_id = c.event_id) AS voided
           FROM claimed c
           JOIN audit_events e ON e.event_id = c.event_id
           LEFT JOIN accounts a ON a.id = e.account_id""",
        limit,
        lease_seconds,
        channels,
    )


async def delivered(conn: Connection, notice_id: UUID) -> None:
    await conn.execute(
        """UPDATE notices SET status = 'delivered', delivered_at = now(), lease_until = NULL,
               last_error = NULL, to_address = NULL
           WHERE id = $1""",
        notice_id,
    )


async def failed_attempt(
    conn: Connection, notice_id: UUID, error: str, retry_in_seconds: float, give_up: bool
) -> None:
    await conn.execute(
        """UPDATE notices SET lease_until = NULL, last_error = $2,
               status = CASE WHEN $4 THEN 'failed' ELSE status END,
               next_attempt_at = now() + make_interval(secs => $3)
           WHERE id = $1""",
        notice_id,
        error[:200],
        retry_in_seconds,
        give_up,
    )


async def listing(conn: Connection, status: str | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT n.id, n.channel, n.status, n.attempts, n.created_at, n.next_attempt_at,
                  n.delivered_at, n.last_error, e.type, a.email AS account_email
           FROM notices n
           JOIN audit_events e ON e.event_id = n.event_id
           LEFT JOIN accounts a ON a.id = e.account_id
           WHERE $1::text IS NULL OR n.status = $1
           ORDER BY n.created_at DESC LIMIT $2""",
        status,
        limit,
    )


async def retry(conn: Connection, notice_id: UUID) -> bool:
    """A failed notice goes back to pending, with another 24 hours to be delivered."""
    status = await conn.execute(
        """UPDATE notices SET status = 'pending', next_attempt_at = now(), lease_until = NULL,
               give_up_at = now() + interval '24 hours'
           WHERE id = $1 AND status = 'failed'""",
        notice_id,
    )
    return status == "UPDATE 1"


async def set_language(conn: Connection, account_id: UUID, language: str) -> None:
    await conn.execute(
        "UPDATE accounts SET language = $2 WHERE id = $1 AND language <> $2",
        account_id,
        language,
    )
