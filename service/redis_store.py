"""The Redis client (single node or cluster), key names, and store failures as `Unavailable`."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any
from uuid import UUID

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError
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


class Keys:
    """Key names. Every key of one account carries the hash tag `{<account tag>}`, so the
    keys a script touches together always share one Redis Cluster slot."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def pin(self, account_id: str | UUID) -> str:
        return f"{self.prefix}pin:{{{account_tag(account_id)}}}"

    def pin_failures(self, account_id: str | UUID) -> str:
        return f"{self.prefix}pinfail:{{{account_tag(account_id)}}}"

    def pin_lock(self, account_id: str | UUID) -> str:
        return f"{self.prefix}pinlock:{{{account_tag(account_id)}}}"

    def pin_state(self, account_id: str | UUID) -> list[str]:
        """`pin`, `pin_failures` and `pin_lock` of the account, its tag computed once."""
        tag = account_tag(account_id)
        return [
            f"{self.prefix}pin:{{{tag}}}",
            f"{self.prefix}pinfail:{{{tag}}}",
            f"{self.prefix}pinlock:{{{tag}}}",
        ]

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
        """Cached account id of an email (by a keyed digest: Redis holds no address)."""
        return f"{self.prefix}acctemail:{{{email_digest}}}"

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

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._deadline = asyncio.timeout(store.timeout)

    async def __aenter__(self) -> None:
        await self._deadline.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._deadline.__aexit__(exc_type, exc, tb)
        except TimeoutError as expired:  # the deadline passed: the step was cancelled
            raise self._store._failed(expired) from expired
        if exc is not None and isinstance(exc, _UNAVAILABLE):
            raise self._store._failed(exc) from exc


class Script:
    """A Lua script of the service, called as `await script(keys=[...], args=[...])` inside
    `RedisStore.guard()`. On a cluster it is redis-py's own script object. On a single node it
    runs on `_DirectConnections` (see there); either way by EVALSHA, loading the script when
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


class _DirectConnections:
    """The service's scripts on a single Redis node, over redis-py connections taken straight
    from an idle list instead of through the client.

    redis-py's client spends, on every command, more CPU than the round trip itself: a pool
    checkout and return under a lock, a retry wrapper and several observability hooks (even
    with observability off). The scripts run on every PIN issuance and verification, so they
    skip that: each call takes an idle connection (or makes one with the client pool's own
    settings: `make_connection`), sends EVALSHA, reads the reply and puts the connection back.
    What the client does and matters is kept: a connection that fails is dropped (a cancelled
    read, as on the guard's deadline, drops it too: redis-py disconnects it), and a connection
    error on a connection that sat idle is tried once more on a fresh one, after dropping the
    other idle ones (a restarted server leaves them all stale). Measured with `bench/run`: see
    the README's Performance section."""

    def __init__(self, pool: ConnectionPool, max_idle: int) -> None:
        self._pool = pool
        self._idle: list[AbstractConnection] = []
        self._max_idle = max_idle

    async def evalsha(self, sha: str, source: str, keys_and_args: list[Any], numkeys: int) -> Any:
        for last_try in (False, True):
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else self._new()
            try:
                reply = await self._run(conn, sha, source, keys_and_args, numkeys)
            except ResponseError:
                await self._release(conn)  # an error reply: the connection is in step
                raise
            except RedisConnectionError:
                await conn.disconnect(nowait=True)
                if not reused or last_try:
                    raise
                # The other idle ones are as stale as this one was: one more try, most likely
                # on a fresh connection.
                await self.close()
                continue
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
            await self._release(conn)
            return reply
        raise AssertionError("unreachable: the last try returns or raises")

    @staticmethod
    async def _run(
        conn: AbstractConnection, sha: str, source: str, keys_and_args: list[Any], numkeys: int
    ) -> Any:
        # hiredis's packer (C) gives the same bytes as redis-py's, in a sixth of the time.
        command = hiredis.pack_command(("EVALSHA", sha, numkeys, *keys_and_args))
        await conn.send_packed_command(command, check_health=False)
        try:
            return await conn.read_response()
        except NoScriptError:
            load: tuple[Any, ...] = ("SCRIPT", "LOAD", source)  # the stub types a 1-tuple
            await conn.send_packed_command(hiredis.pack_command(load), check_health=False)
            await conn.read_response()
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()

    def _new(self) -> AbstractConnection:
        connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]  # untyped upstream
        return connection

    async def _release(self, conn: AbstractConnection) -> None:
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            await conn.disconnect(nowait=True)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.disconnect(nowait=True)


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
            else _DirectConnections(
                client.connection_pool, max_idle=client.connection_pool.max_connections
            )
        )

    def script(self, source: str) -> Script:
        return Script(self, source)

    def guard(self) -> _Guard:
        """`async with store.guard():` bounds one step by the timeout (the step's only
        deadline: see `make_client`; it also covers the cluster client's own retries and slot
        refreshes) and turns outages into `Unavailable`."""
        return _Guard(self)

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
            await self._direct.close()
        await self.client.aclose()
