"""Store outages under traffic, on Redis and PostgreSQL processes of this test's own.

A live `support-pin serve` runs issue-and-verify traffic while each store in turn hangs
(SIGSTOP) and crashes (SIGKILL, then a restart). Shown: every answer during an outage is a
503 `unavailable` with Retry-After, within about the timeout (measured from the client); no
500, no hung request; `/readyz` says 503; after the store is back, issue and verify work with
no restart of the service; every 2xx issue or verification has its audit row; and no request
answered with an error shows as an event (a row whose INSERT committed after its request was
answered 503 is voided once PostgreSQL answers again)."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.container import open_services
from service.persistence.migrations import migrate
from service.settings import Settings
from tests.conftest import GENEROUS_RATE_LIMITS, PASSWORD
from tests.live import running_server, settings_env
from tests.own_stores import PostgresServer, RedisServer, own_stores
from tests.stores import database_url

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # DB_TIMEOUT_SECONDS and REDIS_TIMEOUT_SECONDS of the service under test
# An outage answer must come within TIMEOUT_RATIO x the timeout, plus what a good answer
# costs on this machine at the time (the 95th percentile of the 2xx answers of the same run
# while the stores were steady: a loaded, shared machine slows both alike). A hung store
# costing two timeouts (a query timeout, then a wait on release) fails this. The measured
# figures are printed (-s).
TIMEOUT_RATIO = 1.5
CLIENT_TIMEOUT = 10.0  # a request with no answer by then counts as hung
OUTAGE_SECONDS = 3.0
USERS = 3
MAX_REQUESTS = 3000
PAUSE_BETWEEN_CALLS = 0.1  # per account loop


@dataclass
class Answer:
    phase: str
    kind: str
    status: int  # 0: no answer (hung or refused)
    code: str | None
    retry_after: str | None
    seconds: float
    request_id: str
    valid: bool | None = None
    pin: str | None = None


class Traffic:
    """Issue-then-verify loops, one per account, recording every answer."""

    def __init__(self, client: httpx.AsyncClient, agent: dict[str, str]) -> None:
        self.client = client
        self.agent = agent
        self.phase = "baseline"
        self.answers: list[Answer] = []
        self.stop = asyncio.Event()

    async def call(self, kind: str, method: str, path: str, **kwargs: Any) -> Answer:
        request_id = f"fault-{uuid.uuid4().hex}"
        headers = {**kwargs.pop("headers", {}), "x-request-id": request_id}
        phase, started = self.phase, time.perf_counter()
        try:
            response = await self.client.request(
                method, path, headers=headers, timeout=CLIENT_TIMEOUT, **kwargs
            )
        except httpx.HTTPError:
            answer = Answer(phase, kind, 0, None, None, time.perf_counter() - started, request_id)
        else:
            seconds = time.perf_counter() - started
            body = response.json() if response.content else {}
            answer = Answer(
                phase,
                kind,
                response.status_code,
                body.get("code"),
                response.headers.get("retry-after"),
                seconds,
                request_id,
                body.get("valid"),
                body.get("pin"),
            )
        self.answers.append(answer)
        return answer

    def since(self, mark: int) -> list[Answer]:
        return self.answers[mark:]


async def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


@contextlib.asynccontextmanager
async def _served_on_own_stores(
    tmp_path: Path,
) -> AsyncIterator[tuple[Any, PostgresServer, RedisServer, dict[str, str], str]]:
    """`support-pin serve` on a PostgreSQL and a Redis of this test's own, with an agent:
    (the server, postgres, redis, the agent's auth header, the database URL)."""
    with own_stores() as (postgres, redis_server):
        admin = await asyncpg.connect(postgres.admin_url)
        await admin.execute("CREATE DATABASE support_pin")
        await admin.close()
        db_url = database_url(postgres.admin_url, "support_pin")
        await migrate(db_url)
        settings = Settings(
            environment="test",
            database_url=db_url,
            redis_url=redis_server.url,
            secret_key="fault-test-secret-key-" + "x" * 32,
            db_timeout_seconds=TIMEOUT,
            redis_timeout_seconds=TIMEOUT,
            # The traffic loops issue PINs far faster than the per-account PIN limit allows,
            # which is not what these tests are about.
            **GENEROUS_RATE_LIMITS,
        )
        services = await open_services(settings)
        try:
            _, key = await services.agents.create("fault-agent")
        finally:
            await services.close()
        with running_server(settings_env(settings), tmp_path / "server.log") as server:
            yield server, postgres, redis_server, {"authorization": f"Bearer {key}"}, db_url


async def _signed_in_users(
    client: httpx.AsyncClient, count: int
) -> list[tuple[str, dict[str, str]]]:
    users: list[tuple[str, dict[str, str]]] = []
    for _ in range(count):
        email = f"caller-{uuid.uuid4().hex[:10]}@example.com"
        created = await client.post("/v1/accounts", json={"email": email, "password": PASSWORD})
        assert created.status_code == 201
        token = await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        users.append((email, {"authorization": f"Bearer {token.json()['access_token']}"}))
    return users


async def test_store_outages_answer_503_fast_and_recover_without_restart(tmp_path: Path) -> None:
    async with _served_on_own_stores(tmp_path) as (server, postgres, redis_server, agent, db):
        started_as = server.process.pid
        await _run_outages(server.url, postgres, redis_server, agent, db)
        # Recovered by itself: the same process served throughout.
        assert server.process.poll() is None
        assert server.process.pid == started_as


AUDIT_FAULT_REQUESTS = 5000  # issue and verify answers counted, at least
AUDIT_FAULT_LOOPS = 16
AUDIT_FAULT_SECONDS = 300  # a bound on the run, outages included


async def test_audit_rows_match_answers_under_postgres_faults(tmp_path: Path) -> None:
    """Steady issuance and verification while PostgreSQL is stopped (SIGSTOP, then SIGCONT)
    and stopped at once (SIGKILL, then a restart), over and over: every 2xx has its committed
    row, and no request answered with an error shows as an event."""
    async with (
        _served_on_own_stores(tmp_path) as (server, postgres, _, agent, db_url),
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        users = await _signed_in_users(client, AUDIT_FAULT_LOOPS)
        traffic = Traffic(client, agent)

        async def account_loop(email: str, user: dict[str, str]) -> None:
            while not traffic.stop.is_set():
                issued = await traffic.call("issue", "POST", "/v1/me/support-pin", headers=user)
                if issued.status == 201 and issued.pin is not None:
                    pin = issued.pin
                    await traffic.call(
                        "verify",
                        "POST",
                        "/v1/agent/verifications",
                        headers=agent,
                        json={"email": email, "pin": pin},
                    )

        def counted() -> int:
            return sum(1 for a in traffic.answers if a.kind in ("issue", "verify"))

        loops = [asyncio.create_task(account_loop(email, user)) for email, user in users]
        deadline = time.monotonic() + AUDIT_FAULT_SECONDS
        faults = 0
        try:
            while counted() < AUDIT_FAULT_REQUESTS and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                if faults % 2 == 0:
                    traffic.phase = "postgres hung"
                    await asyncio.to_thread(postgres.pause)
                    await asyncio.sleep(1.5)
                    await asyncio.to_thread(postgres.resume)
                else:
                    traffic.phase = "postgres killed"
                    await asyncio.to_thread(postgres.kill)
                    await asyncio.sleep(0.5)
                    await asyncio.to_thread(postgres.start)
                traffic.phase = "steady"
                faults += 1
            await asyncio.sleep(1.0)  # a last steady stretch
        finally:
            traffic.stop.set()
            await asyncio.gather(*loops)

        # Checked while the stores still run.
        answers = traffic.answers
        _report(answers, [])
        assert counted() >= AUDIT_FAULT_REQUESTS, counted()
        assert faults >= 2
        statuses = {a.status for a in answers}
        assert statuses <= {200, 201, 503}, statuses
        assert any(a.status == 503 for a in answers), "the faults did not bite"
        ok = {a.request_id for a in answers if a.status in (200, 201)}
        audited = await _audited_request_ids(db_url)
        assert not ok - audited, f"{len(ok - audited)} successful answers without an audit row"
        await _assert_no_error_shown_as_event(answers, db_url)


async def _run_outages(
    url: str, postgres: Any, redis_server: Any, agent: dict[str, str], db_url: str
) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        users: list[tuple[str, dict[str, str]]] = []
        for _ in range(USERS):
            email = f"caller-{uuid.uuid4().hex[:10]}@example.com"
            created = await client.post("/v1/accounts", json={"email": email, "password": PASSWORD})
            assert created.status_code == 201
            token = await client.post(
                "/v1/auth/token", data={"username": email, "password": PASSWORD}
            )
            users.append((email, {"authorization": f"Bearer {token.json()['access_token']}"}))

        traffic = Traffic(client, agent)
        pins: dict[str, str] = {}

        # The loop needs the PIN it was just given; keep it per account.
        async def account_loop(email: str, user: dict[str, str]) -> None:
            while not traffic.stop.is_set() and len(traffic.answers) < MAX_REQUESTS:
                request_id = f"fault-{uuid.uuid4().hex}"
                phase, started = traffic.phase, time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/me/support-pin",
                        headers={**user, "x-request-id": request_id},
                        timeout=CLIENT_TIMEOUT,
                    )
                except httpx.HTTPError:
                    traffic.answers.append(
                        Answer(
                            phase, "issue", 0, None, None, time.perf_counter() - started, request_id
                        )
                    )
                else:
                    body = response.json()
                    traffic.answers.append(
                        Answer(
                            phase,
                            "issue",
                            response.status_code,
                            body.get("code"),
                            response.headers.get("retry-after"),
                            time.perf_counter() - started,
                            request_id,
                        )
                    )
                    if response.status_code == 201:
                        pins[email] = body["pin"]
                        await traffic.call(
                            "verify",
                            "POST",
                            "/v1/agent/verifications",
                            headers=agent,
                            json={"email": email, "pin": pins[email]},
                        )
                await asyncio.sleep(PAUSE_BETWEEN_CALLS)

        loops = [asyncio.create_task(account_loop(email, user)) for email, user in users]
        readiness: list[Answer] = []

        def recovered_since(mark: int) -> Callable[[], bool]:
            def check() -> bool:
                later = traffic.since(mark)
                return any(a.kind == "issue" and a.status == 201 for a in later) and any(
                    a.kind == "verify" and a.valid is True for a in later
                )

            return check

        async def outage(
            name: str, break_it: Callable[[], None], mend_it: Callable[[], None]
        ) -> None:
            traffic.phase = name
            await asyncio.to_thread(break_it)
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            readiness.append(await traffic.call("readyz", "GET", "/readyz"))
            await asyncio.sleep(OUTAGE_SECONDS / 2)
            await asyncio.to_thread(mend_it)
            traffic.phase = name + ":back"
            mark = len(traffic.answers)
            assert await _wait_for(recovered_since(mark), 15), f"no recovery after {name}"
            ready = await traffic.call("readyz", "GET", "/readyz")
            assert ready.status == 200, f"/readyz after {name}: {ready}"

        try:
            assert await _wait_for(recovered_since(0), 10), "no traffic before the faults"
            await outage("redis hung", redis_server.pause, redis_server.resume)
            await outage("redis killed", redis_server.kill, redis_server.start)
            await outage("postgres hung", postgres.pause, postgres.resume)
            await outage("postgres killed", postgres.kill, postgres.start)
        finally:
            traffic.stop.set()
            await asyncio.gather(*loops)
        exposition = (await client.get("/metrics")).text

    answers = traffic.answers
    _report(answers, readiness)
    statuses = {a.status for a in answers}
    assert 0 not in statuses, "a request got no answer (hung or dropped)"
    assert 500 not in statuses
    assert statuses <= {200, 201, 503}, statuses
    outages = [a for a in answers if a.status == 503 and a.kind != "readyz"]
    # Good answers while the stores were steady (not those that waited out a hang).
    good = sorted(
        a.seconds
        for a in answers
        if a.status in (200, 201) and (a.phase == "baseline" or a.phase.endswith(":back"))
    )
    bound = TIMEOUT_RATIO * TIMEOUT + good[int(len(good) * 0.95)]
    print(f"bound on an outage answer: {bound:.3f}s")
    for answer in outages:
        assert answer.code == "unavailable", answer
        assert answer.retry_after is not None, answer
        assert int(answer.retry_after) >= 1, answer
        assert answer.seconds <= bound, answer
    for name in ("redis hung", "redis killed", "postgres hung", "postgres killed"):
        assert any(a.phase == name for a in outages), f"{name}: no 503 seen, the fault did not bite"
    for ready in readiness:
        assert ready.status == 503, ready
        assert ready.seconds <= bound, ready
    # Store errors are counted.
    assert 'support_pin_store_errors_total{store="redis"} 0.0' not in exposition
    assert 'support_pin_store_errors_total{store="postgres"} 0.0' not in exposition

    # Every 2xx issue or verification has its audit row, found by its request id.
    succeeded = {
        a.request_id for a in answers if a.kind in ("issue", "verify") and a.status in (200, 201)
    }
    missing = succeeded - await _audited_request_ids(db_url)
    assert not missing, f"{len(missing)} successful answers without an audit row"
    assert len(succeeded) > 20

    await _assert_no_error_shown_as_event(answers, db_url)


async def _audited_request_ids(db_url: str) -> set[str]:
    """The request ids of every audit row the traffic of these tests wrote."""
    conn = await _connect_when_up(db_url)
    try:
        rows = await conn.fetch(
            "SELECT request_id FROM audit_events WHERE request_id LIKE 'fault-%'"
        )
    finally:
        await conn.close()
    return {row["request_id"] for row in rows}


async def _assert_no_error_shown_as_event(answers: list[Answer], db_url: str) -> None:
    """No request answered with an error shows as an event: any row of one is voided (the
    service writes the voids as soon as PostgreSQL answers again)."""
    failed = [a.request_id for a in answers if a.kind in ("issue", "verify") and a.status == 503]
    shown: int | None = None
    for _ in range(100):
        conn = await _connect_when_up(db_url)
        try:
            shown = await conn.fetchval(
                """SELECT count(*) FROM audit_events e WHERE request_id = ANY($1::text[])
                   AND NOT EXISTS (SELECT 1 FROM audit_voids v WHERE v.event_id = e.event_id)""",
                failed,
            )
        finally:
            await conn.close()
        if shown == 0:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{shown} events of requests answered with an error are shown")


async def _connect_when_up(db_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(db_url, timeout=10)


def _report(answers: list[Answer], readiness: list[Answer]) -> None:
    """Printed with -s: the measured answer times per phase."""
    phases = dict.fromkeys(a.phase for a in answers)
    for phase in phases:
        mine = [a for a in answers if a.phase == phase]
        failed = [a.seconds for a in mine if a.status == 503]
        ok = [a.seconds for a in mine if a.status in (200, 201)]
        line = f"{phase:22} answers={len(mine):4} ok={len(ok):4} 503={len(failed):4}"
        if ok:
            line += f" ok seconds: median={statistics.median(ok):.3f} max={max(ok):.3f}"
        if failed:
            line += f" 503 seconds: median={statistics.median(failed):.3f} max={max(failed):.3f}"
        print(line)
    for ready in readiness:
        print(f"readyz during {ready.phase}: {ready.status} in {ready.seconds:.3f}s")
