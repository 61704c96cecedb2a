"""Group commit of audit rows: concurrent callers share one transaction, each gets its own
row's timestamp, and a failed batch fails every caller in it (so PIN changes are undone)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from service.audit import AuditLog
from service.errors import Unavailable
from service.logs import request_id_var
from service.models import Agent, AuditEvent, EventType
from service.persistence.db import Database
from service.settings import Settings
from tests.conftest import Harness, HarnessFactory


async def _record_as(audit: AuditLog, request_id: str, *events: AuditEvent):
    token = request_id_var.set(request_id)
    try:
        return await audit.record(*events)
    finally:
        request_id_var.reset(token)


async def test_concurrent_records_share_transactions_and_get_their_own_rows(
    h: Harness, pg: asyncpg.Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    accounts = [uuid.uuid4() for _ in range(40)]
    stamps = await asyncio.gather(
        *(
            _record_as(h.services.audit, f"gc-{run}-{i}", AuditEvent(EventType.ISSUED, account))
            for i, account in enumerate(accounts)
        )
    )
    rows = await pg.fetch(
        """SELECT request_id, account_id, occurred_at, xmin::text::bigint AS tx
           FROM audit_events WHERE request_id LIKE $1""",
        f"gc-{run}-%",
    )
    assert len(rows) == len(accounts)
    by_request = {row["request_id"]: row for row in rows}
    for i, account in enumerate(accounts):
        row = by_request[f"gc-{run}-{i}"]
        assert row["account_id"] == account
        assert row["occurred_at"] == stamps[i]
    # 40 callers, far fewer transactions: they were committed together.
    assert len({row["tx"] for row in rows}) < len(accounts) / 4


async def test_a_caller_with_several_events_gets_the_first_ones_time(
    h: Harness, pg: asyncpg.Connection
) -> None:
    request_id = f"gc-multi-{uuid.uuid4().hex[:8]}"
    account = uuid.uuid4()
    first, other = await asyncio.gather(
        _record_as(
            h.services.audit,
            request_id,
            AuditEvent(EventType.VERIFY_FAILED, account, reason="wrong_pin"),
            AuditEvent(EventType.LOCKED, account),
        ),
        _record_as(h.services.audit, request_id + "-x", AuditEvent(EventType.ISSUED, account)),
    )
    rows = await pg.fetch(
        "SELECT type, occurred_at FROM audit_events WHERE request_id = $1 ORDER BY id",
        request_id,
    )
    assert [row["type"] for row in rows] == ["verify_failed", "locked"]
    assert first == rows[0]["occurred_at"]
    assert other != first


async def test_every_field_is_stored_exactly_as_given(h: Harness, pg: asyncpg.Connection) -> None:
    """A batch travels to PostgreSQL as one JSON document: text with quotes, backslashes,
    tabs and characters outside the BMP, absent values and UUIDs (the standard library's and
    asyncpg's own) all come back unchanged."""
    run = uuid.uuid4().hex[:8]
    stored_agent = await pg.fetchrow(
        "INSERT INTO agents (name, key_hash) VALUES ($1, $2) RETURNING id, name",
        f'agent "{run}" \\ back\tslash \U0001f511 ümlaut',
        uuid.uuid4().bytes,
    )
    assert stored_agent is not None
    # asyncpg's UUID type, as ids read from Postgres are.
    agent = Agent(stored_agent["id"], stored_agent["name"])
    account = uuid.uuid4()
    events = [
        AuditEvent(EventType.VERIFY_FAILED, account, agent, reason="wrong_pin"),
        AuditEvent(EventType.LOCKED, account, agent),
        AuditEvent(EventType.AGENT_CREATED, None, agent),
    ]
    await _record_as(h.services.audit, f"gc-exact-{run}", *events)
    rows = await pg.fetch(
        """SELECT type, account_id, agent_id, agent_name, reason, request_id
           FROM audit_events WHERE request_id = $1 ORDER BY id""",
        f"gc-exact-{run}",
    )
    assert [tuple(row) for row in rows] == [
        ("verify_failed", account, agent.id, agent.name, "wrong_pin", f"gc-exact-{run}"),
        ("locked", account, agent.id, agent.name, None, f"gc-exact-{run}"),
        ("agent_created", None, agent.id, agent.name, None, f"gc-exact-{run}"),
    ]
    await pg.execute("DELETE FROM agents WHERE id = $1", agent.id)


async def test_a_caller_that_goes_away_does_not_stop_the_batch(
    h: Harness, pg: asyncpg.Connection
) -> None:
    """A request cancelled while its row is being written (its client hung up) cancels only
    its own wait: the batch it shares with others commits, its row included, and the others
    get their timestamps."""
    run = uuid.uuid4().hex[:8]
    audit = h.services.audit
    # The first caller starts the writer; the others queue while it runs; one goes away.
    first = asyncio.ensure_future(
        _record_as(audit, f"gc-gone-{run}-0", AuditEvent(EventType.ISSUED, uuid.uuid4()))
    )
    await asyncio.sleep(0)
    callers = [
        asyncio.ensure_future(
            _record_as(audit, f"gc-gone-{run}-{i}", AuditEvent(EventType.ISSUED, uuid.uuid4()))
        )
        for i in range(1, 6)
    ]
    await asyncio.sleep(0)
    callers[2].cancel()
    done = await asyncio.gather(first, *callers, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    assert all(not isinstance(stamp, BaseException) for i, stamp in enumerate(done) if i != 3), done
    rows = await pg.fetch(
        "SELECT request_id FROM audit_events WHERE request_id LIKE $1", f"gc-gone-{run}-%"
    )
    assert sorted(row["request_id"] for row in rows) == [f"gc-gone-{run}-{i}" for i in range(6)]


async def test_batches_are_split_at_the_row_limit(
    make_settings: Callable[..., Settings], pg: asyncpg.Connection
) -> None:
    settings = make_settings()
    assert settings.database_url
    db = await Database.connect(settings.database_url, min_size=1, max_size=2, timeout=5)
    try:
        audit = AuditLog(db, max_batch_rows=3)
        run = uuid.uuid4().hex[:8]
        await asyncio.gather(
            *(
                _record_as(audit, f"split-{run}-{i}", AuditEvent(EventType.ISSUED, uuid.uuid4()))
                for i in range(10)
            )
        )
    finally:
        await db.close()
    rows = await pg.fetch(
        "SELECT xmin::text::bigint AS tx FROM audit_events WHERE request_id LIKE $1",
        f"split-{run}-%",
    )
    assert len(rows) == 10
    transactions: dict[int, int] = {}
    for row in rows:
        transactions[row["tx"]] = transactions.get(row["tx"], 0) + 1
    assert max(transactions.values()) <= 3
    assert len(transactions) >= 4


async def test_a_failed_batch_fails_every_caller_in_it(
    make_settings: Callable[..., Settings],
) -> None:
    audit = AuditLog(await _closed_database(make_settings))
    results = await asyncio.gather(
        *(audit.record(AuditEvent(EventType.ISSUED, uuid.uuid4())) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(result, Unavailable) for result in results)


async def _closed_database(make_settings: Callable[..., Settings]) -> Database:
    settings = make_settings()
    assert settings.database_url
    db = await Database.connect(settings.database_url, min_size=1, max_size=1, timeout=1)
    await db.close()  # every write now fails
    return db


async def test_a_failed_batch_undoes_newest_first_before_failing_each_caller(
    make_settings: Callable[..., Settings],
) -> None:
    audit = AuditLog(await _closed_database(make_settings))
    undone: list[int] = []

    def undo_of(i: int):
        async def undo() -> None:
            undone.append(i)

        return undo

    results = await asyncio.gather(
        *(audit.record(AuditEvent(EventType.ISSUED), undo=undo_of(i)) for i in range(4)),
        return_exceptions=True,
    )
    assert all(isinstance(result, Unavailable) for result in results)
    assert undone == [3, 2, 1, 0]


async def test_an_issue_whose_row_is_refused_leaves_the_previous_pin_working(
    harness_factory: HarnessFactory, make_settings: Callable[..., Settings]
) -> None:
    h = await harness_factory()
    email, user = await h.user()
    _, agent = await h.agent()
    old_pin = await h.issue_pin(user)

    working_audit = h.services.pins._audit
    h.services.pins._audit = AuditLog(await _closed_database(make_settings))
    try:
        answer = await h.client.post("/v1/me/support-pin", headers=user)
    finally:
        h.services.pins._audit = working_audit
    assert answer.status_code == 503
    assert "pin" not in answer.json()
    assert (await h.verify(agent, email, old_pin))["valid"] is True


@pytest.mark.parametrize("events", [0])
async def test_record_needs_an_event(h: Harness, events: int) -> None:
    with pytest.raises(ValueError, match="at least one event"):
        await h.services.audit.record(*[AuditEvent(EventType.ISSUED)] * events)
