"""The audit log: an event is only 'recorded' once its row is committed in Postgres.

Group commit: concurrent `record()` calls are written together, one multi-row INSERT in one
transaction, while each caller waits for that commit. Under load this replaces a transaction
(and a pooled connection) per request by one per batch; a lone call is written at once, so
nothing waits for a timer. If the batch fails, every caller in it gets `Unavailable`.

A batch whose INSERT was sent but not confirmed (the database stopped answering) may still
commit later, although its callers answered with an error. Every row carries an id chosen
here, and the ids of such a batch are voided (`audit_voids`) as soon as the database answers
again: a voided event is not shown as having happened, and the log stays append-only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from service.errors import Unavailable
from service.logs import request_id_var
from service.models import ACCOUNT_VISIBLE_EVENTS, AccountEvent, AuditEvent
from service.persistence import audit as sql
from service.persistence.db import Connection, Database

log = logging.getLogger(__name__)

# Rows per INSERT; a burst larger than this is written as several batches, one after another.
MAX_BATCH_ROWS = 500
# How often voids are tried again while the database does not answer (seconds, doubling).
SETTLE_FIRST_WAIT, SETTLE_MAX_WAIT = 0.2, 5.0


Undo = Callable[[], Awaitable[None]]


@dataclass
class _Waiter:
    rows: list[sql.EventRow]
    done: asyncio.Future[datetime] = field(repr=False)
    undo: Undo | None = None


class AuditLog:
    def __init__(
        self,
        db: Database,
        *,
        max_batch_rows: int = MAX_BATCH_ROWS,
        notices: sql.NoticeRule | None = None,
        on_notice: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._notices = notices or sql.NoticeRule()
        self._on_notice = on_notice
        self._max_batch_rows = max_batch_rows
        self._queue: deque[_Waiter] = deque()
        self._writer: asyncio.Task[None] | None = None
        # Ids of rows whose INSERT's outcome is unknown, to be voided.
        self._unsettled: set[uuid.UUID] = set()
        self._settler: asyncio.Task[None] | None = None

    async def record(self, *events: AuditEvent, undo: Undo | None = None) -> datetime:
        """Commit the events in one transaction and return the first one's timestamp.

        Raises `Unavailable` if Postgres does not take the rows: the caller must then not
        answer with success. `undo`, if given, is awaited before that: the undos of a failed
        batch run one at a time, newest first, so changes to the same state stacked by
        several callers (three PINs issued at once, each replacing the previous) unwind in
        the reverse order of how they were made."""
        rows = _rows(events)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(rows, loop.create_future(), undo)
        # If the caller is gone when the batch fails, its exception is still 'retrieved'.
        waiter.done.add_done_callback(_retrieve)
        self._queue.append(waiter)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_queued(), name="audit-group-commit")
        # The batch runs in the writer task, never in a caller's: a caller that goes away
        # (cancelled) cancels only its own future, which the writer then leaves alone; its
        # rows are written, and its undo run, with the batch's (no `asyncio.shield`, which
        # cost a future and two callbacks per call, is needed for that).
        return await waiter.done

    async def insert(self, conn: Connection, *events: AuditEvent) -> datetime:
        """Write the events inside the caller's transaction (they commit, or roll back, with
        the change they describe); returns the first one's timestamp."""
        rows = _rows(events)
        stamps = await sql.insert_events(conn, rows, self._notices)
        self._noticed(rows)  # early: the transaction may still roll back (then none is due)
        return stamps[0]

    async def _write_queued(self) -> None:
        """Write batches until the queue is empty; callers arriving meanwhile join the next."""
        while self._queue:
            batch: list[_Waiter] = []
            size = 0
            while self._queue and (
                not batch or size + len(self._queue[0].rows) <= self._max_batch_rows
            ):
                waiter = self._queue.popleft()
                batch.append(waiter)
                size += len(waiter.rows)
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[_Waiter]) -> None:
        rows = [row for waiter in batch for row in waiter.rows]

        async def write(conn: Connection) -> list[datetime]:
            return await sql.insert_events(conn, rows, self._notices)

        try:
            # One INSERT for the batch: committed as a whole or not at all.
            stamps = await self._db.must_write(write, one_statement=True)
        except Unavailable:
            # Postgres is away: callers queued behind this batch would only wait out another
            # timeout each, so they fail now too (their undos first: they are newer).
            self._void_later(rows)
            queued = list(self._queue)
            self._queue.clear()
            await self._fail(batch + queued, None)
            return
        except asyncio.CancelledError:
            # Shutdown: nobody in the batch may answer success.
            self._void_later(rows)
            for waiter in batch:
                if not waiter.done.done():
                    waiter.done.set_exception(Unavailable())
            raise
        except Exception as exc:
            log.error("audit batch failed", exc_info=exc)  # a bug: logged once, here
            self._void_later(rows)
            await self._fail(batch, exc)
            return
        at = 0
        for waiter in batch:
            if not waiter.done.done():
                waiter.done.set_result(stamps[at])
            at += len(waiter.rows)
        self._noticed(rows)

    def _noticed(self, rows: list[sql.EventRow]) -> None:
        """Tell the delivery worker when committed rows came with notices."""
        if self._on_notice is not None and any(
            row.account_id is not None and row.type in self._notices.types for row in rows
        ):
            self._on_notice()

    def _void_later(self, rows: list[sql.EventRow]) -> None:
        """Void these rows once the database answers (they may have committed)."""
        self._unsettled.update(row.event_id for row in rows)
        if self._settler is None or self._settler.done():
            self._settler = asyncio.get_running_loop().create_task(
                self._settle(), name="audit-settle"
            )

    async def _settle(self) -> None:
        wait = SETTLE_FIRST_WAIT
        while self._unsettled:
            ids = list(self._unsettled)

            async def write(conn: Connection, ids: list[uuid.UUID] = ids) -> None:
                await sql.void_events(conn, ids)

            try:
                await self._db.must_write(write, one_statement=True)
            except Unavailable:
                await asyncio.sleep(wait)
                wait = min(wait * 2, SETTLE_MAX_WAIT)
                continue
            self._unsettled.difference_update(ids)
            log.warning("voided %d audit events answered with an error", len(ids))
            wait = SETTLE_FIRST_WAIT

    async def settle(self, seconds: float) -> bool:
        """Wait up to `seconds` for pending voids to be written; False if some are not."""
        if self._settler is not None and not self._settler.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._settler), seconds)
        if self._unsettled:
            log.error("%d audit events could not be voided before shutdown", len(self._unsettled))
        return not self._unsettled

    async def _fail(self, batch: list[_Waiter], error: Exception | None) -> None:
        for waiter in reversed(batch):
            if waiter.undo is not None:
                try:
                    await waiter.undo()
                except Exception as exc:  # one failed undo must not skip the others
                    log.error("audit undo failed", exc_info=exc)
            if not waiter.done.done():
                waiter.done.set_exception(error if error is not None else Unavailable())

    async def account_events(self, account_id: UUID, limit: int) -> list[AccountEvent]:
        async with self._db.connection() as conn:
            rows = await sql.account_events(
                conn, account_id, [t.value for t in ACCOUNT_VISIBLE_EVENTS], limit
            )
        return [
            AccountEvent(row["type"], row["occurred_at"], row["agent_name"], row["case_ref"])
            for row in rows
        ]

    async def search(self, query: sql.AuditQuery, limit: int) -> list[asyncpg.Record]:
        async with self._db.connection() as conn:
            return await sql.search(conn, query, limit)


def _rows(events: tuple[AuditEvent, ...]) -> list[sql.EventRow]:
    if not events:
        raise ValueError("an audit write needs at least one event")
    request_id = request_id_var.get()
    return [
        sql.EventRow(
            event_id=event.id or uuid.uuid4(),
            type=event.type.value,
            account_id=event.account_id,
            agent_id=event.agent.id if event.agent else None,
            agent_name=event.agent.name if event.agent else None,
            reason=event.reason,
            request_id=request_id,
            actor=event.actor or (event.agent.actor if event.agent else None),
            case_ref=event.case_ref,
            target=event.target,
        )
        for event in events
    ]


def _retrieve(future: asyncio.Future[datetime]) -> None:
    if not future.cancelled():
        future.exception()
