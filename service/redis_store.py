"""The Redis client (single node or cluster), key names, and store failures as `Unavailable`."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
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

    def session(self, token_digest: str) -> str:
        return f"{self.prefix}sess:{{{token_digest}}}"

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
    """A client that fails within `timeout`. A connection error is retried once (a restarted
    server leaves stale pooled connections; one quick retry reconnects them); a timeout is
    not retried, so a hung server costs one timeout, not several."""
    common: dict[str, Any] = {
        "socket_timeout": timeout,
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

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Bound one step by the timeout (socket timeouts alone do not cover the cluster
        client's own retries and slot refreshes) and turn outages into `Unavailable`."""
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except _UNAVAILABLE as exc:
            if self._on_error is not None:
                self._on_error("redis")
            log.warning("redis unavailable: %s", type(exc).__name__)
            raise Unavailable() from exc

    async def ping(self) -> None:
        async with self.guard():
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()
