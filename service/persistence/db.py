"""The asyncpg pool, with store failures turned into a clean `Unavailable`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from service.errors import Unavailable

log = logging.getLogger(__name__)

# Errors that mean "the database did not answer", as opposed to a bug in our SQL.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    # A connection left mid-operation by a fault ("another operation is in progress"): it is
    # closed like any broken one.
    asyncpg.InternalClientError,
)

T = TypeVar("T")
# What persistence functions take: a pooled connection or a plain one (migrations, tests).
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
StoreErrorHook = Callable[[str], None]


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL): one more round trip on every release, for session state this service never
    leaves behind on pooled connections (no LISTEN, SET, cursors or advisory locks; migrations
    use a connection of their own). asyncpg still rolls back an open transaction before this."""


class Database:
    """Owns the pool; hands out connections that fail fast when Postgres is away."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        timeout: float,
        on_error: StoreErrorHook | None = None,
    ) -> None:
        self.pool = pool
        self.timeout = timeout
        self._on_error = on_error

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float,  # noqa: ASYNC109 (passed to asyncpg as its per-call timeout)
        on_error: StoreErrorHook | None = None,
    ) -> Database:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            command_timeout=timeout,
            # A broken connection is dropped rather than handed out again.
            max_inactive_connection_lifetime=300,
            server_settings={"application_name": "support-pin"},
            reset=_keep_session,
        )
        return cls(pool, timeout, on_error)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=self.timeout)
        except (*_UNAVAILABLE, asyncpg.PostgresError):
            self.pool.terminate()  # a hung server must not hold up shutdown

    def _failed(self, exc: BaseException) -> Unavailable:
        if self._on_error is not None:
            self._on_error("postgres")
        log.warning("postgres unavailable: %s", type(exc).__name__)
        return Unavailable()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection; store outages surface as `Unavailable`.

        One deadline (the timeout) covers acquiring the connection and the caller's work on
        it, so a Postgres that hangs (stopped, or a network black hole) costs a request at
        most the timeout. A connection that failed or ran out of time is closed, not pooled:
        asyncpg would otherwise wait for a query cancellation that a hung server never
        confirms."""
        conn: PoolConnectionProxy[asyncpg.Record] | None = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await self.pool.acquire()
                yield conn
        except _UNAVAILABLE as exc:
            if conn is not None:
                _terminate(conn)
            raise self._failed(exc) from exc
        except asyncio.CancelledError:
            if conn is not None:
                _terminate(conn)  # cancelled mid-query: the connection's state is unknown
            raise
        finally:
            if conn is not None:
                await self._release(conn)

    async def _release(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        try:
            await self.pool.release(conn, timeout=self.timeout)
        except (*_UNAVAILABLE, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # asyncpg has already closed the connection; the pool opens a fresh one later.
            log.warning("postgres connection dropped on release: %s", type(exc).__name__)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                yield conn
            except (*_UNAVAILABLE, asyncio.CancelledError):
                # No ROLLBACK on a connection that timed out or broke: it is closed instead,
                # which ends the transaction server-side, and a ROLLBACK could wait again.
                raise
            except BaseException:
                await tx.rollback()
                raise
            await tx.commit()

    async def must_write(
        self, write: Callable[[Connection], Awaitable[T]], *, one_statement: bool = False
    ) -> T:
        """Run a write that the caller cannot answer without: any refusal becomes `Unavailable`.

        `one_statement`: `write` runs a single statement, which PostgreSQL commits (or rolls
        back) as a whole on its own, so no BEGIN and COMMIT round trips are spent on it."""
        try:
            if one_statement:
                async with self.connection() as conn:
                    return await write(conn)
            async with self.transaction() as conn:
                return await write(conn)
        except asyncpg.PostgresError as exc:
            raise self._failed(exc) from exc

    async def ping(self) -> None:
        async with self.connection() as conn:
            await conn.fetchval("SELECT 1")


def _terminate(conn: PoolConnectionProxy[asyncpg.Record]) -> None:
    """Close a broken connection, unless asyncpg already handed it back to the pool when it
    broke (then `terminate()` raises InterfaceError: it was a 500 in the fault test)."""
    try:
        conn.terminate()
    except asyncpg.InterfaceError:
        log.warning("postgres connection already released when it failed")
