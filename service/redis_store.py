"""The Redis client (single node or cluster), key names, and store failures as `Unavailable`."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any
from uuid import UUID

import hiredis
from redis._parsers import BaseParser
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from service.errors import Unavailable

log = logging.getLogger(__name__)

# RedisClusterException: the cluster client's "cannot be connected" when no node answers
# while it (re)discovers the slots (a 500 in the rate limiter, the first Redis step of a
# verification, before this was here).
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
    OSError,
    TimeoutError,
)

RedisClient = Redis | RedisCluster


def account_tag(account_id: str | UUID) -> str:
    """An account id as it appears in key names: a UUID (object or string) as the unpadded
    base64url of its 16 bytes (22 characters instead of 36; with a million active PINs the
    key names are a good part of Redis's memory), anything else unchanged."""
    if isinstance(account_id, UUID):
        uuid = account_id
    else:
        try:
            uuid = UUID(account_id)
        except ValueError:
            return account_id
    return base64.urlsafe_b64encode(uuid.bytes).rstrip(b"=").decode()


def account_id_from_tag(tag: str) -> UUID:
    """The account id of an `account_tag`; ValueError if `tag` is not one (in its one
    spelling: base64 has others for the same bytes, which would name other keys)."""
    try:
        uuid = UUID(bytes=base64.urlsafe_b64decode(tag + "=="))
    except ValueError:  # binascii.Error included
        uuid = None
    if uuid is None or account_tag(uuid) != tag:
        raise ValueError("not an account tag")
    return uuid


class Keys:
    """Key names. Every key of one account carries the hash tag `{<account tag>}`, so the
    keys a script touches together always share one Redis Cluster slot."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        # The account's PIN, failure counter and lock: each name is one of these followed by
        # `{<account tag>}` (a script that finds the account itself builds them the same way).
        self.pin_state_prefixes = (f"{prefix}pin:", f"{prefix}pinfail:", f"{prefix}pinlock:")

    def pin(self, account_id: str | UUID) -> str:
        return f"{self.pin_state_prefixes[0]}{{{account_tag(account_id)}}}"

    def pin_failures(self, account_id: str | UUID) -> str:
        return f"{self.pin_state_prefixes[1]}{{{account_tag(account_id)}}}"

    def pin_lock(self, account_id: str | UUID) -> str:
        return f"{self.pin_state_prefixes[2]}{{{account_tag(account_id)}}}"

    def pin_state(self, account_id: str | UUID) -> list[str]:
        """`pin`, `pin_failures` and `pin_lock` of the account, its tag computed once."""
        return self.pin_state_by_tag(account_tag(account_id))

    def pin_state_by_tag(self, tag: str) -> list[str]:
        """`pin_state` of the account whose `account_tag` is `tag`."""
        return [f"{prefix}{{{tag}}}" for prefix in self.pin_state_prefixes]

    def session(self, account_id: str | UUID, token_digest: str) -> str:
        """A session of the account (in its slot, so its scripts can check the session)."""
        return f"{self.prefix}sess:{{{account_tag(account_id)}}}:{token_digest}"

    def account_sessions(self, account_id: str | UUID) -> str:
        """Set of the session digests of an account (to end them all at once)."""
        return f"{self.prefix}sessidx:{{{account_tag(account_id)}}}"

    # Two-factor sign-in.
    def mfa_token(self, token_digest: str) -> str:
        return f"{self.prefix}mfatok:{{{token_digest}}}"

    def mfa_failures(self, account_id: str | UUID) -> str:
        return f"{self.prefix}mfafail:{{{account_tag(account_id)}}}"

    def mfa_lock(self, account_id: str | UUID) -> str:
        return f"{self.prefix}mfalock:{{{account_tag(account_id)}}}"

    def totp_step(self, account_id: str | UUID, step: int) -> str:
        """Present while an accepted TOTP time-step could still be valid (replay guard)."""
        return f"{self.prefix}totpstep:{{{account_tag(account_id)}}}:{step}"

    # Lookup caches.
    def agent_key(self, key_digest: str) -> str:
        """Cached agent of an API key (by the key's stored SHA-256), or a revocation mark."""
        return f"{self.prefix}agentkey:{{{key_digest}}}"

    def account_by_email(self, email_digest: str) -> str:
        """Cached account of an email, as its tag (by a keyed digest: Redis holds no address).
        (The name changed when the value did, from the id's bytes: `acctemail:`.)"""
        return f"{self.prefix}emailtag:{{{email_digest}}}"

    def rate_limit(self, limit: str, subject: str) -> str:
        # One key per script call, so no hash tag is needed; braces keep the slot per subject.
        return f"{self.prefix}rl:{limit}:{{{subject}}}"


def make_client(url: str, *, cluster: bool, timeout: float, pool_size: int) -> RedisClient:
    """A client whose connects fail within `timeout`. Commands get no socket timeout of their
    own: every command runs inside `RedisStore.guard()`, whose deadline is the one bound of a
    step. (A socket timeout costs a task per command sent, `asyncio.wait_for`, and a timer per
    reply read. A command cancelled by the guard's deadline drops its connection, so no
    half-read reply is reused.) A connection error is retried once (a restarted server leaves
    stale pooled connections; one quick retry reconnects them); a timeout is not retried, so
    a hung server costs one timeout, not several."""
    common: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": timeout,
        "retry": Retry(
            ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(RedisConnectionError,)
        ),
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, max_connections=pool_size, **common)
    return Redis.from_url(
        url,
        max_connections=pool_size,
        health_check_interval=30,
        client_name="support-pin",
        **common,
    )


class _Guard:
    """What `RedisStore.guard()` returns: a class rather than an `@asynccontextmanager`,
    which costs a generator and its wrapper on each of the several Redis steps of a request."""

    __slots__ = ("_deadline", "_store")

    def __init__(self, store: RedisStore, *, timed: bool = True) -> None:
        self._store = store
        self._deadline = asyncio.timeout(store.timeout) if timed else None

    async def __aenter__(self) -> None:
        if self._deadline is not None:
            await self._deadline.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deadline is not None:
            try:
                await self._deadline.__aexit__(exc_type, exc, tb)
            except TimeoutError as expired:  # the deadline passed: the step was cancelled
                raise self._store._failed(expired) from expired
        if exc is not None and isinstance(exc, _UNAVAILABLE):
            raise self._store._failed(exc) from exc


class Script:
    """A Lua script of the service, called as `await script(keys=[...], args=[...])` inside
    `RedisStore.guard()`. On a cluster it is redis-py's own script object. On a single node it
    runs on `_ScriptRunner` (see there); either way by EVALSHA, loading the script when
    Redis does not know it (after a restart)."""

    def __init__(self, store: RedisStore, source: str) -> None:
        self._registered = store.client.register_script(source)
        self._source = source
        self._direct = store._direct
        self.sha = self._registered.sha

    async def __call__(self, keys: list[str], args: list[Any] | None = None) -> Any:
        if self._direct is None:
            return await self._registered(keys=keys, args=args or [])
        return await self._direct.evalsha(self.sha, self._source, [*keys, *(args or [])], len(keys))


class _PipelinedConnection(asyncio.Protocol):
    """One Redis connection shared by every script call of the process (single node).

    Redis answers the commands of a connection in the order they were sent, so callers need
    no connection of their own: each appends its command and waits for the next reply in
    line. Commands sent during one turn of the event loop leave in one write, and a read
    brings back all the replies that have arrived. Under load that turns a write system
    call, a read and an event-loop wake-up per command into one per batch, for the service
    and for Redis (see the README's Performance section for what that bought).

    A caller that stops waiting (cancelled, or its guard's deadline passed) leaves its place
    in line: its reply is read and dropped when it comes. When the connection is lost every
    waiting caller fails with a connection error (and `_ScriptRunner` gives each one more
    try on a new connection).

    The timeout is the connection's own: when the oldest unanswered command has waited
    `timeout`, every waiting caller fails with `TimeoutError` and the connection is dropped
    (Redis answers in order, so none of the later ones would be answered sooner), and a hung
    or vanished server cannot hold every later call behind it. One timer per connection,
    re-armed for the oldest command, instead of one per call: a call in a guard without a
    timer of its own (`RedisStore.guard(scripts_only=True)`) costs no timer at all."""

    def __init__(self, writer: asyncio.StreamWriter, timeout: float | None) -> None:
        self._writer = writer  # kept: its finaliser would close the transport
        self._transport = writer.transport
        self._loop = asyncio.get_running_loop()
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._outgoing: list[bytes] = []
        self._timeout = timeout
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost = False
        self._transport.set_protocol(self)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        """Queue `command` (packed); the future gets its reply, the error Redis sent, or
        `TimeoutError` if the connection stalls."""
        reply: asyncio.Future[Any] = self._loop.create_future()
        if self.lost:
            reply.set_exception(RedisConnectionError("Redis connection lost"))
            return reply
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(command)
        now = self._loop.time()
        self._waiting.append((reply, now))
        if self._watchdog is None and self._timeout is not None:
            self._watchdog = self._loop.call_at(now + self._timeout, self._check)
        return reply

    def _check(self) -> None:
        """The watchdog: fail everything if the oldest command is overdue, else look again
        when it will be."""
        self._watchdog = None
        if self.lost or not self._waiting or self._timeout is None:
            return
        oldest = self._waiting[0][1]
        if self._loop.time() - oldest < self._timeout:
            self._watchdog = self._loop.call_at(oldest + self._timeout, self._check)
            return
        log.warning("redis did not answer within the timeout; dropping the connection")
        self._fail_waiting(TimeoutError("Redis did not answer within the timeout"))
        self.close()

    def _flush(self) -> None:
        if not self.lost:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                waiter, _ = self._waiting.popleft()
                if waiter.done():
                    continue  # its caller stopped waiting
                if isinstance(reply, Exception):
                    waiter.set_exception(reply)
                else:
                    waiter.set_result(reply)
        except (InvalidResponse, IndexError) as exc:  # garbage, or a reply nobody asked for
            log.error("redis sent an unexpected reply; dropping the connection", exc_info=exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_waiting(RedisConnectionError("Redis connection lost"))

    def _fail_waiting(self, error: Exception) -> None:
        waiting, self._waiting = self._waiting, deque()
        for waiter, _ in waiting:
            if not waiter.done():
                waiter.set_exception(error)

    def close(self) -> None:
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._transport.abort()  # unanswered commands fail now, in connection_lost


class _ScriptRunner:
    """The service's scripts on a single Redis node, over one `_PipelinedConnection`.

    redis-py's client spends, on every command, more CPU than the round trip itself (a pool
    checkout and return under a lock, a retry wrapper, observability hooks even with
    observability off) and gives each concurrent command a connection, a write and a read of
    its own. The scripts run on every PIN issuance and verification, so they skip that. The
    connection is made by the client pool's own settings (`make_connection`: address, TLS,
    credentials, database, client name), then taken over from redis-py. What the client does
    and matters is kept: EVALSHA, with SCRIPT LOAD when Redis does not know the script (after
    a restart); a lost connection is replaced, and a command that was waiting on it when it
    was lost is tried once more on the new one (a restarted server closes it; a timeout is
    never retried); a connection on which a command got no answer within the timeout is
    dropped, its callers failing with `TimeoutError` (see `_PipelinedConnection`)."""

    def __init__(self, pool: ConnectionPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: _PipelinedConnection | None = None
        self._connecting = asyncio.Lock()

    async def evalsha(self, sha: str, source: str, keys_and_args: list[Any], numkeys: int) -> Any:
        # hiredis's packer (C) gives the same bytes as redis-py's, in a sixth of the time.
        command = hiredis.pack_command(("EVALSHA", sha, numkeys, *keys_and_args))
        conn = self._conn
        if conn is not None and not conn.lost:
            try:
                return await self._run(conn, command, source)  # bounded by the connection
            except RedisConnectionError:
                pass  # lost while this waited (a restarted server): once more, on a new one
        # A new connection (made for this call, or just now for another: no older one to
        # blame, so no further try). Waiting for the connection being made, making it (the
        # handshake's replies are read with no socket timeout) and the call get one deadline
        # together, as under a guard's timer: a step in `guard(scripts_only=True)` has no
        # other, and a stopped server's kernel still accepts connections.
        async with asyncio.timeout(self._timeout):
            return await self._run(await self._connect(), command, source)

    @staticmethod
    async def _run(conn: _PipelinedConnection, command: bytes, source: str) -> Any:
        try:
            return await conn.send(command)
        except NoScriptError:
            load: tuple[Any, ...] = ("SCRIPT", "LOAD", source)  # the stub types a 1-tuple
            loaded = conn.send(hiredis.pack_command(load))
            again = conn.send(command)  # same write: no round trip more than needed
            try:
                await loaded
            except BaseException:
                again.add_done_callback(_retrieve)
                raise
            return await again

    async def _connect(self) -> _PipelinedConnection:
        async with self._connecting:  # one connection made at a time; the others use it
            if self._conn is not None and not self._conn.lost:
                return self._conn
            raw: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]  # untyped upstream
            try:
                # redis-py's handshake: AUTH, HELLO, SELECT, CLIENT SETNAME (bounded by the
                # caller's deadline, see `evalsha`).
                await raw.connect()  # type: ignore[no-untyped-call]  # untyped upstream
            except BaseException:
                await raw.disconnect(nowait=True)
                raise
            # Taken over (see the class docstring): redis-py lets go of the stream, so it
            # neither closes it when its connection object is collected nor reads from it.
            writer = raw._writer
            if writer is None:  # connect() returned, so it is set
                raise RedisConnectionError("Redis connection not established")
            raw._writer = raw._reader = None
            self._conn = _PipelinedConnection(writer, self._timeout)
            return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class RedisStore:
    """Owns the client; `guard()` turns outages into `Unavailable`."""

    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        on_error: Callable[[str], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.timeout = timeout
        self._on_error = on_error
        self._direct = (
            None
            if isinstance(client, RedisCluster)
            else _ScriptRunner(client.connection_pool, timeout)
        )

    @property
    def is_cluster(self) -> bool:
        # From the client's kind as decided once above: `isinstance` against redis-py's
        # client classes (typing Protocols in their bases) costs 1-2 us a call.
        return self._direct is None

    def script(self, source: str) -> Script:
        return Script(self, source)

    def guard(self, *, scripts_only: bool = False) -> _Guard:
        """`async with store.guard():` bounds one step by the timeout (the step's only
        deadline: see `make_client`; it also covers the cluster client's own retries and slot
        refreshes) and turns outages into `Unavailable`.

        `scripts_only=True` is for a step that only calls `Script`s: on a single node their
        shared connection bounds every call by the same timeout itself
        (`_PipelinedConnection`), so the guard sets no timer of its own (7 us a step, two
        steps per verification). Anything else in such a step would have no deadline."""
        return _Guard(self, timed=not (scripts_only and self._direct is not None))

    def _failed(self, exc: BaseException) -> Unavailable:
        if self._on_error is not None:
            self._on_error("redis")
        log.warning("redis unavailable: %s", type(exc).__name__)
        return Unavailable()

    async def ping(self) -> None:
        async with self.guard():
            await self.client.ping()

    async def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        await self.client.aclose()
