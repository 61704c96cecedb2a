"""`bench/run --live`: the live pages and the notices outbox, against real service processes
on loopback (see docs/performance.md, "Live pages and notices").

1. **Streams held.** One instance holds N `GET /v1/me/stream` streams of signed-in
   customers, one connection each. The server's resident memory before and after gives the
   memory per stream; its CPU time over an idle spell with every stream open gives the idle
   CPU (pings every 15 s and the session check that goes with each).
2. **Event latency across instances.** Streams of M accounts are held on instance B, and
   right PINs are verified on instance A at a steady rate (each account gets a new PIN from
   A, with its session, before each check). Each check's `case_ref` names it; the time from
   A's 200 answer to the `pin_verified` event with that `case_ref` on B's stream is the
   latency.
3. **Outbox throughput.** Right PINs verified on both instances, as fast as a few
   connections go; their webhooks go to a receiver in this process, which checks every
   signature with `standardwebhooks`. Measured: from the first verification sent to the last
   distinct webhook received, and the duplicates.

The same two instances serve all three, each `support-pin serve` with one worker, webhooks on
throughout (as in production) and LOG_LEVEL=WARNING (without SMTP_URL every email notice
would be written to the log at INFO). Every open stream is a request in flight, so
HTTP_MAX_CONCURRENT_REQUESTS is raised above N. Nothing here is asserted: the figures are
reported, with the targets beside them."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import math
import resource
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bench.server import ServiceProcess
from bench.stores import (
    Account,
    delete_prefix,
    load_pins,
    own_database,
    random_pins,
    seed_accounts,
    seed_sessions,
)
from service.container import Services, open_services
from service.settings import RATE_LIMIT_NAMES, Settings

RAISED_LIMIT = "1000000/second"
KB = 1024

TARGETS = {
    "memory_per_stream_kb": 20.0,  # at most
    "event_p99_ms": 250.0,  # at most, from the verification's answer on A to the event on B
    "outbox_seconds": 10.0,  # at most, for 1,000 notices
}


@dataclass(frozen=True)
class LiveSizes:
    streams: int  # held on one instance
    idle_seconds: float  # the idle spell with every stream open
    latency_accounts: int  # streams held on B in the latency run
    verify_rate: float  # verifications per second sent to A
    latency_seconds: float
    notices: int  # verifications, each one webhook notice
    settle_seconds: float  # pauses for things to settle (streams opened or closed)


FULL = LiveSizes(
    streams=5_000,
    idle_seconds=20.0,
    latency_accounts=200,
    verify_rate=200.0,
    latency_seconds=10.0,
    notices=1_000,
    settle_seconds=2.0,
)
SMOKE = LiveSizes(
    streams=200,
    idle_seconds=2.0,
    latency_accounts=50,
    verify_rate=200.0,
    latency_seconds=2.0,
    notices=100,
    settle_seconds=0.5,
)

# Streams being opened at once, and API requests in flight in the outbox run.
OPEN_CONCURRENCY = 64
OUTBOX_CONCURRENCY = 16  # per instance
# Streams opened and closed before the "before" reading: a route's first requests load code.
WARM_STREAMS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "live part", "live pages and notices (defaults: full size; smoke size with --smoke)"
    )
    group.add_argument(
        "--live",
        action="store_true",
        help="run only the live part: streams held, event latency across two instances, "
        "outbox throughput",
    )
    group.add_argument("--live-streams", type=int, help=f"streams held (full {FULL.streams})")
    group.add_argument(
        "--live-idle", type=float, help=f"idle seconds with them open (full {FULL.idle_seconds:g})"
    )
    group.add_argument(
        "--live-accounts",
        type=int,
        help=f"streams on B in the latency run (full {FULL.latency_accounts})",
    )
    group.add_argument(
        "--live-rate", type=float, help=f"verifications/s to A (full {FULL.verify_rate:g})"
    )
    group.add_argument(
        "--live-seconds",
        type=float,
        help=f"length of the latency run (full {FULL.latency_seconds:g})",
    )
    group.add_argument(
        "--live-notices", type=int, help=f"notices of the outbox run (full {FULL.notices})"
    )


def sizes_from(args: argparse.Namespace) -> LiveSizes:
    base = SMOKE if args.smoke else FULL
    return LiveSizes(
        streams=args.live_streams or base.streams,
        idle_seconds=args.live_idle or base.idle_seconds,
        latency_accounts=args.live_accounts or base.latency_accounts,
        verify_rate=args.live_rate or base.verify_rate,
        latency_seconds=args.live_seconds or base.latency_seconds,
        notices=args.live_notices or base.notices,
        settle_seconds=base.settle_seconds,
    )


# -- a Server-Sent Events client, one connection per stream ----------------------------------

# An event's name, data and id, and the perf_counter() of its arrival.
OnEvent = Callable[[str, str, str, float], None]


class EventStream(asyncio.Protocol):
    """`GET /v1/me/stream` on a connection of its own: the answer's head, then its body
    (chunked, as hypercorn sends a body of unknown length) read as Server-Sent Events. Each
    event goes to `on_event` with the time its bytes arrived. A protocol, not a task: a few
    hundred bytes per stream on this side."""

    def __init__(self, request: bytes, on_event: OnEvent | None) -> None:
        self._request = request
        self._on_event = on_event
        self.opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._in_body = False
        self._chunked = False
        self._raw = bytearray()  # chunked framing not yet decoded
        self._chunk_left = -1  # -1: a chunk-size line comes next; -2: a chunk's CRLF
        self._text = bytearray()  # decoded body not yet split into lines
        self._name = ""
        self._id = ""
        self._data: list[str] = []
        self._closing = False
        self.comments = 0
        self.events = 0
        self.ended_by_server = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("a stream transport was expected")
        self._transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            self.ended_by_server = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before the answer's head"))

    def close(self) -> None:
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = bytes(self._head[:end]), bytes(self._head[end + 4 :])
            self._head.clear()
            self._in_body = True
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "transfer-encoding":
                    self._chunked = "chunked" in value.lower()
            if not self.opened.done():
                self.opened.set_result(status)
            if status != 200:
                self.close()
                return
        if self._chunked:
            self._dechunk(data, now)
        else:
            self._feed(data, now)

    def _dechunk(self, data: bytes, now: float) -> None:
        self._raw += data
        while True:
            if self._chunk_left == -1:
                end = self._raw.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self._raw[:end]).split(b";")[0], 16)
                del self._raw[: end + 2]
                if size == 0:  # the last chunk: the server ended the stream
                    self.ended_by_server = True
                    return
                self._chunk_left = size
            elif self._chunk_left == -2:
                if len(self._raw) < 2:
                    return
                del self._raw[:2]
                self._chunk_left = -1
            else:
                if not self._raw:
                    return
                take = min(self._chunk_left, len(self._raw))
                self._feed(bytes(self._raw[:take]), now)
                del self._raw[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_left = -2

    def _feed(self, data: bytes, now: float) -> None:
        self._text += data
        while (end := self._text.find(b"\n")) >= 0:
            line = bytes(self._text[:end]).rstrip(b"\r").decode()
            del self._text[: end + 1]
            if not line:
                if self._data or self._name:
                    self.events += 1
                    if self._on_event is not None:
                        text = "\n".join(self._data)
                        self._on_event(self._name or "message", text, self._id, now)
                self._name, self._id, self._data = "", "", []
            elif line.startswith(":"):
                self.comments += 1  # the keep-alive ping
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    self._name = value
                elif field == "data":
                    self._data.append(value)
                elif field == "id":
                    self._id = value


async def open_streams(
    url: str,
    tokens: list[str],
    on_event: Callable[[int], OnEvent | None] | None = None,
    *,
    concurrency: int = OPEN_CONCURRENCY,
) -> tuple[list[EventStream], Counter[str]]:
    """A stream per token (in order; `on_event(i)` gives the i-th its callback), opened
    `concurrency` at a time. Returns those answered 200, and a count of every outcome."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    outcomes: Counter[str] = Counter()

    async def one(index: int, token: str) -> EventStream | None:
        request = (
            f"GET /v1/me/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        callback = on_event(index) if on_event is not None else None
        async with gate:
            try:
                _, stream = await loop.create_connection(
                    functools.partial(EventStream, request, callback), host, port
                )
                status = await asyncio.wait_for(stream.opened, 30)
            except (OSError, TimeoutError) as exc:
                outcomes[type(exc).__name__] += 1
                return None
        outcomes[str(status)] += 1
        return stream if status == 200 else None

    found = await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
    return [s for s in found if s is not None], outcomes


def close_streams(streams: Iterable[EventStream]) -> None:
    for stream in streams:
        stream.close()


def raise_fd_limit(needed: int) -> int:
    """The soft limit of open files raised to `needed` (up to the hard limit); the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# -- the webhook receiver ------------------------------------------------------------------


class WebhookReceiver:
    """A plain HTTP/1.1 server on loopback that takes the notices' webhooks: each signature
    checked with `standardwebhooks` (a bad one is answered 400, so the service retries it).
    Webhooks of checks whose `case_ref` starts with the prefix given to `reset` are counted
    by `webhook-id`, with the time each first arrived; the others only in `other`."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)
        self._server: asyncio.Server | None = None
        self.url = ""
        self._prefix = ""
        self._want = 0
        self.reached = asyncio.Event()
        self.first_seen: dict[str, float] = {}  # webhook-id → arrival
        self.case_refs: dict[str, str] = {}  # webhook-id → the checked case_ref
        self.received: Counter[str] = Counter()  # webhook-id → deliveries
        self.bad_signatures = 0
        self.other = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/webhooks"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def reset(self, prefix: str) -> None:
        self._prefix, self._want = prefix, 0
        self.reached.clear()
        self.first_seen.clear()
        self.case_refs.clear()
        self.received.clear()
        self.bad_signatures = self.other = 0

    def expect(self, distinct: int) -> None:
        """Set `reached` once this many distinct webhooks have been counted."""
        self._want = distinct
        if len(self.first_seen) >= distinct:
            self.reached.set()

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                arrived = time.perf_counter()
                status = "204 No Content" if self._take(body, headers, arrived) else "400 Bad"
                writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    def _take(self, body: bytes, headers: dict[str, str], arrived: float) -> bool:
        try:
            payload = self._webhook.verify(body, headers)
        except WebhookVerificationError:
            self.bad_signatures += 1
            return False
        data = payload.get("data") if isinstance(payload, dict) else None
        case_ref = data.get("case_ref") if isinstance(data, dict) else None
        if not (self._prefix and isinstance(case_ref, str) and case_ref.startswith(self._prefix)):
            self.other += 1
            return True
        webhook_id = headers["webhook-id"]
        self.received[webhook_id] += 1
        if webhook_id not in self.first_seen:
            self.first_seen[webhook_id] = arrived
            self.case_refs[webhook_id] = case_ref
            if self._want and len(self.first_seen) >= self._want:
                self.reached.set()
        return True


# -- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted values; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def kb(value: int | None) -> float | None:
    return None if value is None else round(value / KB, 1)


def log_counts(path: Path) -> Counter[str]:
    """An instance's log lines so far (warnings and errors: LOG_LEVEL=WARNING), by message."""
    counts: Counter[str] = Counter()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return counts
    for line in text.splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            entry = None
        message = entry.get("event") if isinstance(entry, dict) else None
        counts[str(message if message is not None else line)[:120]] += 1
    return counts


def own_cpu_seconds() -> float:
    """This process's CPU time so far (the bench's own client work)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_share(before: float | None, after: float | None, seconds: float) -> float | None:
    """CPU seconds between two readings as a percentage of one core over `seconds`."""
    if before is None or after is None or seconds <= 0:
        return None
    return round((after - before) / seconds * 100, 1)


async def cpu_over(server: ServiceProcess, seconds: float) -> float | None:
    """The server's CPU seconds over a spell of `seconds`."""
    before = server.cpu_seconds()
    await asyncio.sleep(seconds)
    after = server.cpu_seconds()
    return None if before is None or after is None else round(after - before, 3)


async def paced(rate: float, count: int, work: Callable[[int], Coroutine[Any, Any, None]]) -> None:
    """`work(i)` for i in 0..count-1, the i-th started at i / rate seconds (or at once, if
    that time has passed): an open loop, so a slow answer does not slow the sending."""
    start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(work(i)))
    await asyncio.gather(*tasks)


# -- the three measurements ------------------------------------------------------------------


async def streams_held(
    server: ServiceProcess, tokens: list[str], idle_seconds: float, settle: float
) -> dict[str, Any]:
    """Part 1: `len(tokens)` streams held on one instance; then closed, and opened once more,
    to tell memory kept for reuse from memory lost."""
    warm, _ = await open_streams(server.url, tokens[:WARM_STREAMS])
    close_streams(warm)
    await asyncio.sleep(settle)
    quiet_seconds = min(5.0, idle_seconds / 2)  # the CPU of the instance with no stream
    quiet_cpu = await cpu_over(server, quiet_seconds)
    rss_before = server.rss_bytes()

    started = time.perf_counter()
    streams, outcomes = await open_streams(server.url, tokens)
    open_seconds = time.perf_counter() - started
    print(
        f"  {len(streams):,} of {len(tokens):,} streams open on B in {open_seconds:.1f} s "
        f"({dict(outcomes)}); idle for {idle_seconds:g} s",
        flush=True,
    )
    http = Http(server.url, 1)
    try:
        await asyncio.sleep(settle)  # the last ones settle
        rss_after = server.rss_bytes()
        idle_cpu = await cpu_over(server, idle_seconds)
        rss_after_idle = server.rss_bytes()
        # An ordinary request beside them: the route every load balancer polls.
        healthz = []
        for _ in range(20):
            status, _, sent, answered = await http.request("GET", "/healthz", {})
            healthz.append(answered - sent)
            outcomes[f"healthz {status}"] += 1
        ended = sum(s.ended_by_server for s in streams)
        pings = sum(s.comments for s in streams)
    finally:
        close_streams(streams)
        http.close()
    await asyncio.sleep(settle)
    rss_closed = server.rss_bytes()
    again, _ = await open_streams(server.url, tokens)
    await asyncio.sleep(settle)
    rss_again = server.rss_bytes()
    close_streams(again)
    await asyncio.sleep(settle)

    per_stream = (
        (rss_after - rss_before) / len(streams)
        if streams and rss_after is not None and rss_before is not None
        else None
    )
    return {
        "streams": len(tokens),
        "opened": len(streams),
        "outcomes": dict(outcomes),
        "open_seconds": round(open_seconds, 2),
        "rss_before_kb": kb(rss_before),
        "rss_after_kb": kb(rss_after),
        "rss_after_idle_kb": kb(rss_after_idle),
        "rss_after_close_kb": kb(rss_closed),
        "reopened": len(again),
        "rss_after_reopen_kb": kb(rss_again),
        "kb_per_stream": None if per_stream is None else round(per_stream / KB, 1),
        "quiet_seconds": quiet_seconds,
        "quiet_cpu_percent": (
            None if quiet_cpu is None else round(quiet_cpu / quiet_seconds * 100, 2)
        ),
        "idle_seconds": idle_seconds,
        "idle_cpu_seconds": idle_cpu,
        "idle_cpu_percent": None if idle_cpu is None else round(idle_cpu / idle_seconds * 100, 2),
        "pings_received": pings,
        "ended_by_server": ended,
        "healthz_p50_ms": ms(percentile(healthz, 0.5)),
        "healthz_max_ms": ms(max(healthz)),
    }


class Http:
    """A small HTTP/1.1 client for the JSON API: keep-alive connections to one instance, at
    most `connections` requests at once (the others wait their turn here). Lighter than a
    general client: this process shares the machine's CPU with the instances it measures."""

    def __init__(self, url: str, connections: int) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._gate = asyncio.Semaphore(connections)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes, float, float]:
        """The answer's status and body, and when the request was sent and answered."""
        head = "".join(
            [
                f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n",
                f"Content-Length: {len(body)}\r\n",
                *(f"{name}: {value}\r\n" for name, value in headers.items()),
                "\r\n",
            ]
        ).encode()
        async with self._gate:
            reused = bool(self._idle)
            try:
                return await self._exchange(head + body)
            except (asyncio.IncompleteReadError, ConnectionError):
                if not reused:
                    raise
                # The instance closed an idle connection: once more on a new one.
                return await self._exchange(head + body, fresh=True)

    async def _exchange(
        self, request: bytes, *, fresh: bool = False
    ) -> tuple[int, bytes, float, float]:
        if self._idle and not fresh:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            length, close = 0, False
            for line in lines:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection":
                    close = value.strip().lower() == "close"
                elif name == "transfer-encoding":
                    raise ConnectionError("a chunked answer: not expected from this route")
            body = await reader.readexactly(length)
            answered = time.perf_counter()
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(status_line.split(" ", 2)[1]), body, sent, answered

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


@dataclass(frozen=True)
class Checked:
    valid: bool
    sent: float  # perf_counter() when the request was written
    answered: float  # and when its answer was read


class Api:
    """The two API calls of the bench on one instance, with each call's time to answer."""

    def __init__(self, url: str, agent_key: str, connections: int) -> None:
        self.http = Http(url, connections)
        self.agent_header = {"Authorization": f"Bearer {agent_key}"}
        self.issue_seconds: list[float] = []
        self.verify_seconds: list[float] = []

    async def issue_pin(self, token: str) -> str | None:
        status, body, sent, answered = await self.http.request(
            "POST", "/v1/me/support-pin", {"Authorization": f"Bearer {token}"}
        )
        self.issue_seconds.append(answered - sent)
        if status != 201:
            return None
        pin = orjson.loads(body).get("pin")
        return pin if isinstance(pin, str) else None

    async def verify(self, email: str, pin: str, case_ref: str) -> Checked:
        status, body, sent, answered = await self.http.request(
            "POST",
            "/v1/agent/verifications",
            {**self.agent_header, "Content-Type": "application/json"},
            orjson.dumps({"email": email, "pin": pin, "case_ref": case_ref}),
        )
        self.verify_seconds.append(answered - sent)
        valid = status == 200 and orjson.loads(body).get("valid") is True
        return Checked(valid, sent, answered)

    def close(self) -> None:
        self.http.close()


async def gather_bounded(limit: int, calls: Iterable[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(c) for c in calls))


async def event_latency(
    a: ServiceProcess,
    b: ServiceProcess,
    agent_key: str,
    accounts: list[Account],
    tokens: list[str],
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """Part 2: checks on A at `rate`, their `pin_verified` events on B. Besides the time
    from A's answer, the time from the event's publication: its id is the Redis stream
    entry's, which starts with Redis's clock in milliseconds (the same host's clock)."""
    arrivals: dict[str, float] = {}
    from_publish: list[float] = []
    other_events: Counter[str] = Counter()
    wall_offset = time.time() - time.perf_counter()
    # After the sending: the answered checks whose event has not come yet.
    waiting: set[str] = set()
    all_in = asyncio.Event()

    def on_event(_: int) -> OnEvent:
        def seen(name: str, data: str, event_id: str, now: float) -> None:
            if name != "pin_verified":
                other_events[name] += 1
                return
            case_ref = orjson.loads(data).get("case_ref")
            if isinstance(case_ref, str) and case_ref not in arrivals:
                arrivals[case_ref] = now
                published_ms = event_id.partition("-")[0]
                if published_ms.isdigit():
                    from_publish.append(now + wall_offset - int(published_ms) / 1000)
                waiting.discard(case_ref)
                if not waiting:
                    all_in.set()

        return seen

    streams, outcomes = await open_streams(b.url, tokens, on_event)
    api = Api(a.url, agent_key, connections=32)
    total = round(rate * seconds)
    checks: dict[int, Checked] = {}
    failed = Counter[str]()
    try:
        pins: list[str | None] = await gather_bounded(16, (api.issue_pin(t) for t in tokens))
        api.issue_seconds.clear()
        # One lock per account: its next check waits for the PIN issued after its last one.
        ready = [asyncio.Lock() for _ in accounts]

        async def check(i: int) -> None:
            j = i % len(accounts)
            async with ready[j]:
                pin = pins[j]
                if pin is None:
                    failed["no PIN"] += 1
                    return
                checks[i] = checked = await api.verify(accounts[j].email, pin, f"live-{i}")
                if not checked.valid:
                    failed["not valid"] += 1
                pins[j] = await api.issue_pin(tokens[j]) if i + len(accounts) < total else None

        cpu_before = [a.cpu_seconds(), b.cpu_seconds(), own_cpu_seconds()]
        started = time.perf_counter()
        await paced(rate, total, check)
        sending = time.perf_counter() - started
        cpu_after = [a.cpu_seconds(), b.cpu_seconds(), own_cpu_seconds()]
        cpu = [cpu_share(x, y, sending) for x, y in zip(cpu_before, cpu_after, strict=True)]
        # Stragglers: up to 5 s for every answered check's event.
        valid = {f"live-{i}": c for i, c in checks.items() if c.valid}
        waiting.update(ref for ref in valid if ref not in arrivals)
        if waiting:
            all_in.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 5.0)
        ended = sum(s.ended_by_server for s in streams)
    finally:
        close_streams(streams)
        api.close()

    from_answer = [arrivals[ref] - c.answered for ref, c in valid.items() if ref in arrivals]
    from_sent = [arrivals[ref] - c.sent for ref, c in valid.items() if ref in arrivals]
    sent = sorted(c.sent for c in checks.values())
    return {
        "accounts": len(accounts),
        "streams_opened": len(streams),
        "stream_outcomes": dict(outcomes),
        "verifications": total,
        "valid": len(valid),
        "failed": dict(failed),
        "target_rate": rate,
        "sent_rate": (
            round((len(sent) - 1) / (sent[-1] - sent[0]), 1)
            if len(sent) > 1 and sent[-1] > sent[0]
            else None
        ),
        "sending_seconds": round(sending, 2),
        "events_matched": len(from_answer),
        "events_missing": len(valid) - len(from_answer),
        "other_events": dict(other_events),
        "streams_ended_by_server": ended,
        "p50_ms": ms(percentile(from_answer, 0.5)),
        "p99_ms": ms(percentile(from_answer, 0.99)),
        "max_ms": ms(max(from_answer, default=None)),
        "min_ms": ms(min(from_answer, default=None)),
        "from_publish_p50_ms": ms(percentile(from_publish, 0.5)),
        "from_publish_p99_ms": ms(percentile(from_publish, 0.99)),
        "from_publish_max_ms": ms(max(from_publish, default=None)),
        "from_request_p50_ms": ms(percentile(from_sent, 0.5)),
        "from_request_p99_ms": ms(percentile(from_sent, 0.99)),
        "verify_answer_p50_ms": ms(percentile(api.verify_seconds, 0.5)),
        "verify_answer_p99_ms": ms(percentile(api.verify_seconds, 0.99)),
        "issue_answer_p50_ms": ms(percentile(api.issue_seconds, 0.5)),
        "issue_answer_p99_ms": ms(percentile(api.issue_seconds, 0.99)),
        "cpu_percent": {"a": cpu[0], "b": cpu[1], "bench": cpu[2]},
    }


async def notice_counts(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT channel, status, count(*) AS n FROM notices GROUP BY 1, 2")
    finally:
        await conn.close()
    return {f"{row['channel']} {row['status']}": row["n"] for row in rows}


async def drained(db_url: str, within: float) -> dict[str, int]:
    """The notices' counts by channel and status once none is pending (or after `within` s)."""
    deadline = time.perf_counter() + within
    while True:
        counts = await notice_counts(db_url)
        if not any(k.endswith(" pending") for k in counts) or time.perf_counter() > deadline:
            return counts
        await asyncio.sleep(0.25)


async def outbox_throughput(
    instances: list[ServiceProcess],
    receiver: WebhookReceiver,
    services: Services,
    agent_key: str,
    accounts: list[Account],
    db_url: str,
    settle: float,
) -> dict[str, Any]:
    """Part 3: one right-PIN check per account, spread over the instances; every check is
    one webhook notice (and one email notice, written to the log, which is off)."""
    pins = random_pins(services, len(accounts))
    await load_pins(services, (a.id for a in accounts), pins, replace=True)
    # The notices of earlier checks delivered first: this run counts its own.
    before = await drained(db_url, 30.0)
    receiver.reset("out-")
    apis = [Api(s.url, agent_key, OUTBOX_CONCURRENCY) for s in instances]
    gate = asyncio.Semaphore(OUTBOX_CONCURRENCY * len(apis))
    answered: dict[str, float] = {}

    async def check(i: int) -> None:
        async with gate:
            case_ref = f"out-{i}"
            checked = await apis[i % len(apis)].verify(accounts[i].email, pins[i], case_ref)
            if checked.valid:
                answered[case_ref] = checked.answered

    cpu_before = [*(s.cpu_seconds() for s in instances), own_cpu_seconds()]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(check(i) for i in range(len(accounts))))
        sending = time.perf_counter() - started
    finally:
        for api in apis:
            api.close()
    receiver.expect(len(answered))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver.reached.wait(), max(30.0, len(answered) / 20))
    arrivals = sorted(receiver.first_seen.values())
    last = arrivals[len(answered) - 1] if answered and len(arrivals) >= len(answered) else None
    elapsed = (last or time.perf_counter()) - started
    cpu_after = [*(s.cpu_seconds() for s in instances), own_cpu_seconds()]
    cpu = [cpu_share(x, y, elapsed) for x, y in zip(cpu_before, cpu_after, strict=True)]
    # The rows' final states, and late duplicates.
    after = await drained(db_url, 10.0)
    await asyncio.sleep(settle)
    delays = [
        receiver.first_seen[wid] - answered[ref]
        for wid, ref in receiver.case_refs.items()
        if ref in answered
    ]
    return {
        "verifications": len(accounts),
        "valid": len(answered),
        "sending_seconds": round(sending, 2),
        "webhooks_distinct": len(receiver.first_seen),
        "deliveries": sum(receiver.received.values()),
        "duplicates": receiver.duplicates,
        "bad_signatures": receiver.bad_signatures,
        "other_webhooks": receiver.other,
        "seconds_to_last": None if last is None else round(last - started, 2),
        "notices_per_second": (
            None if last is None else round(len(answered) / (last - started), 1)
        ),
        "delay_p50_ms": ms(percentile(delays, 0.5)),
        "delay_p99_ms": ms(percentile(delays, 0.99)),
        "verify_answer_p50_ms": ms(percentile([t for a in apis for t in a.verify_seconds], 0.5)),
        "verify_answer_p99_ms": ms(percentile([t for a in apis for t in a.verify_seconds], 0.99)),
        "notice_rows": {k: n - before.get(k, 0) for k, n in after.items()},
        "cpu_percent": {
            **dict(zip("ab", cpu, strict=False)),
            "bench": cpu[-1],
        },
    }


# -- the run ---------------------------------------------------------------------------------


async def start_instances(stack: AsyncExitStack, *instances: ServiceProcess) -> None:
    """Start the instances side by side (each one's start is mostly imports); the stack
    stops them."""
    for instance in instances:
        stack.push(instance.__exit__)
    await asyncio.gather(*(asyncio.to_thread(i.__enter__) for i in instances))


async def run_live(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    """The three measurements on one pair of instances, A and B, with webhooks on (as in
    production): streams held on B, events from checks on A to streams on B, then the
    outbox of checks on both."""
    sizes = sizes_from(args)
    prefix = f"bench:{secrets.token_hex(4)}:"
    secret_key = secrets.token_urlsafe(36)
    password = "bench-" + secrets.token_hex(12)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    raised: dict[str, Any] = {f"rate_limit_{name}": RAISED_LIMIT for name in RATE_LIMIT_NAMES}
    # Every open stream is a request in flight: room for them and the other requests.
    max_requests = sizes.streams + 1_000
    fd_limit = raise_fd_limit(sizes.streams + 2_000)  # the instances inherit it
    logs = {name: args.out / f"{stamp}-live-{name}.log" for name in ("a", "b")}
    print(
        f"live part: {sizes.streams:,} streams held, {sizes.latency_accounts} streams with "
        f"{sizes.verify_rate:g} checks/s for {sizes.latency_seconds:g} s, "
        f"{sizes.notices:,} notices",
        flush=True,
    )
    started = time.perf_counter()
    phases: dict[str, float] = {}

    logged = {name: Counter[str]() for name in logs}

    def phase(name: str) -> dict[str, dict[str, int]]:
        """Marks the end of a phase; what the instances logged during it."""
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 1)
        new = {}
        for instance, path in logs.items():
            now = log_counts(path)
            if now - logged[instance]:
                new[instance] = dict(now - logged[instance])
            logged[instance] = now
        return new

    async with own_database(args.postgres_url) as db_url:
        settings = Settings(
            environment="production",
            database_url=db_url,
            redis_url=args.redis_url,
            redis_key_prefix=prefix,
            secret_key=secret_key,
            **raised,
        )
        services = await open_services(settings)
        receiver = WebhookReceiver(webhook_secret)
        try:
            accounts = await seed_accounts(
                db_url, max(sizes.streams, sizes.latency_accounts, sizes.notices), password
            )
            _, agent_key = await services.agents.create("bench-live-agent")
            tokens = await seed_sessions(services, accounts)
            await receiver.start()
            env = {
                "ENVIRONMENT": "production",
                "DATABASE_URL": db_url,
                "REDIS_URL": args.redis_url,
                "REDIS_KEY_PREFIX": prefix,
                "SECRET_KEY": secret_key,
                "LOG_LEVEL": "WARNING",
                "HTTP_MAX_CONCURRENT_REQUESTS": str(max_requests),
                "WEBHOOK_URL": receiver.url,
                "WEBHOOK_SECRET": webhook_secret,
                **{name.upper(): value for name, value in raised.items()},
            }
            async with AsyncExitStack() as stack:
                a = ServiceProcess(env, workers=1, log_path=logs["a"])
                b = ServiceProcess(env, workers=1, log_path=logs["b"])
                await start_instances(stack, a, b)
                phase("set_up")
                print(
                    f"  seeded, instances A {a.url} and B {b.url} up in "
                    f"{time.perf_counter() - started:.1f} s",
                    flush=True,
                )
                held = await streams_held(
                    b, tokens[: sizes.streams], sizes.idle_seconds, sizes.settle_seconds
                )
                held["server_log"] = phase("streams")
                m = sizes.latency_accounts
                latency = await event_latency(
                    a,
                    b,
                    agent_key,
                    accounts[:m],
                    tokens[:m],
                    sizes.verify_rate,
                    sizes.latency_seconds,
                )
                latency["server_log"] = phase("event_latency")
                print(
                    f"  event latency: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
                    f"({latency['valid']:,} checks at {latency['sent_rate']}/s)",
                    flush=True,
                )
                outbox = await outbox_throughput(
                    [a, b],
                    receiver,
                    services,
                    agent_key,
                    accounts[: sizes.notices],
                    db_url,
                    sizes.settle_seconds,
                )
                outbox["server_log"] = phase("outbox")
                print(
                    f"  outbox: {outbox['webhooks_distinct']:,} webhooks, the last after "
                    f"{outbox['seconds_to_last']} s, {outbox['duplicates']} duplicates",
                    flush=True,
                )
        finally:
            await receiver.close()
            await delete_prefix(services.redis.client, prefix)
            await services.close()
    for path in logs.values():
        if path.exists() and path.stat().st_size == 0:
            path.unlink()
    stopping = phase("tear_down")
    seconds = time.perf_counter() - started
    print(f"  live part done in {seconds:.0f} s", flush=True)
    return {
        "sizes": asdict(sizes),
        "targets": TARGETS,
        "seconds": round(seconds, 1),
        "phase_seconds": phases,
        "server_log_at_stop": stopping,
        "instances": {
            "workers": 1,
            "log_level": "WARNING",
            "webhooks": True,
            "http_max_concurrent_requests": max_requests,
            "fd_soft_limit": fd_limit,
        },
        "streams": held,
        "event_latency": latency,
        "outbox": outbox,
    }


# -- the table -------------------------------------------------------------------------------


def _fig(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    return f"{value:,}{unit}"


def _met(value: float | None, bound: float) -> str:
    return "–" if value is None else ("yes" if value <= bound else "no")


def _mb(value_kb: float | None) -> str:
    return "–" if value_kb is None else f"{value_kb / 1024:,.0f}"


def table(live: dict[str, Any]) -> str:
    """The live figures as a Markdown table, with the targets beside them."""
    held, latency, outbox = live["streams"], live["event_latency"], live["outbox"]
    t = live["targets"]
    rows = [
        (
            f"memory per stream ({held['opened']:,} streams on one instance)",
            _fig(held["kb_per_stream"], " KB"),
            f"≤ {t['memory_per_stream_kb']:g} KB",
            _met(held["kb_per_stream"], t["memory_per_stream_kb"]),
        ),
        (
            "instance RSS, MB: before / streams open / closed / opened again",
            f"{_mb(held['rss_before_kb'])} / {_mb(held['rss_after_kb'])} / "
            f"{_mb(held['rss_after_close_kb'])} / {_mb(held['rss_after_reopen_kb'])}",
            "",
            "",
        ),
        (
            f"idle CPU with the streams open, {held['idle_seconds']:g} s "
            f"(without streams: {_fig(held['quiet_cpu_percent'], ' %')})",
            _fig(held["idle_cpu_percent"], " % of a core"),
            "",
            "",
        ),
        (
            "streams the instance ended during the idle spell",
            f"{held['ended_by_server']:,} of {held['opened']:,}",
            "0",
            "yes" if held["ended_by_server"] == 0 else "no",
        ),
        (
            f"event A → B after A's answer, p50 / p99 ({latency['valid']:,} checks, "
            f"{_fig(latency['sent_rate'])}/s of {latency['target_rate']:g}/s, "
            f"{latency['accounts']} streams)",
            f"{_fig(latency['p50_ms'])} / {_fig(latency['p99_ms'], ' ms')}",
            f"p99 ≤ {t['event_p99_ms']:g} ms",
            _met(latency["p99_ms"], t["event_p99_ms"]),
        ),
        (
            "event after its publication (Redis time), p50 / p99; after the request, p99",
            f"{_fig(latency['from_publish_p50_ms'])} / "
            f"{_fig(latency['from_publish_p99_ms'], ' ms')}; "
            f"{_fig(latency['from_request_p99_ms'], ' ms')}",
            "",
            "",
        ),
        (
            "events missing; A's answers, p50 / p99: verification, issuance",
            f"{latency['events_missing']}; {_fig(latency['verify_answer_p50_ms'])} / "
            f"{_fig(latency['verify_answer_p99_ms'], ' ms')}, "
            f"{_fig(latency['issue_answer_p50_ms'])} / "
            f"{_fig(latency['issue_answer_p99_ms'], ' ms')}",
            "0 missing",
            "yes" if latency["events_missing"] == 0 else "no",
        ),
        (
            f"outbox: first check to {outbox['valid']:,}th distinct webhook (2 instances)",
            _fig(outbox["seconds_to_last"], " s"),
            f"≤ {t['outbox_seconds']:g} s for 1,000",
            _met(outbox["seconds_to_last"], t["outbox_seconds"]),
        ),
        (
            "webhook duplicates / bad signatures; check → webhook p50 / p99",
            f"{outbox['duplicates']} / {outbox['bad_signatures']}; "
            f"{_fig(outbox['delay_p50_ms'])} / {_fig(outbox['delay_p99_ms'], ' ms')}",
            "0 duplicates",
            "yes" if outbox["duplicates"] == 0 else "no",
        ),
    ]
    lines = ["| live | measured | target | met |", "|---|---:|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)
