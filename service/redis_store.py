"""The Redis client (single node or cluster), key names, scripts, and outages as `Unavailable`."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from uuid import UUID

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.errors import Unavailable

log = logging.getLogger(__name__)

# RedisClusterException: the cluster client's "cannot be connected" while no node answers.
_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
    OSError,
    TimeoutError,
)

RedisClient = Redis | RedisCluster


def account_tag(account_id: UUID) -> str:
    """An account id as it appears in key names: the unpadded base64url of its 16 bytes
    (22 characters instead of 36: key names are much of Redis's memory per PIN)."""
    return base64.urlsafe_b64encode(account_id.bytes).rstrip(b"=").decode()


def load_lua(name: str) -> str:
    """The source of `service/lua/<name>.lua`."""
    return resources.files("service").joinpath("lua", f"{name}.lua").read_text("utf-8")


class Keys:
    """Key names. Every key of one account carries the hash tag `{<account tag>}`, so the
    keys a script touches together always share one Redis Cluster slot."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def _of_account(self, kind: str, account_id: UUID) -> str:
        return f"{self.prefix}{kind}:{{{account_tag(account_id)}}}"

    def pin(self, account_id: UUID) -> str:
        return self._of_account("pin", account_id)

    def pin_state(self, account_id: UUID) -> list[str]:
        """The account's PIN, consecutive-failure counter and lock, in that order."""
        return self.pin_state_of(account_tag(account_id))

    def pin_state_of(self, subject: str) -> list[str]:
        """`pin_state` of an account tag, or of an email's digest for an address with no
        account (a check of it runs the same script over keys no PIN is ever stored in)."""
        return [f"{self.prefix}{kind}:{{{subject}}}" for kind in ("pin", "pinfail", "pinlock")]

    def session(self, account_id: UUID, token_digest: str) -> str:
        """A session of the account (in its slot, so the issue script can check it)."""
        return f"{self._of_account('sess', account_id)}:{token_digest}"

    def account_sessions(self, account_id: UUID) -> str:
        """Set of the session digests of an account (to end them all at once)."""
        return self._of_account("sessidx", account_id)

    # Two-factor sign-in.
    def mfa_token(self, token_digest: str) -> str:
        return f"{self.prefix}mfatok:{{{token_digest}}}"

    def mfa_failures(self, account_id: UUID) -> str:
        return self._of_account("mfafail", account_id)

    def mfa_lock(self, account_id: UUID) -> str:
        return self._of_account("mfalock", account_id)

    def totp_step(self, account_id: UUID, step: int) -> str:
        """Present while an accepted TOTP time-step could still be valid (replay guard)."""
        return f"{self._of_account('totpstep', account_id)}:{step}"

    def sign_in_failures(self, subject: str) -> str:
        """Consecutive failed sign-ins of a subject (in the slot of its rate-limit logs)."""
        return f"{self.prefix}signfail:{{{subject}}}"

    def sign_in_flow(self, digest: str) -> str:
        """State of a sign-in through an OpenID provider (Authlib's, single use)."""
        return f"{self.prefix}oidcflow:{digest}"

    def sign_in_code(self, digest: str) -> str:
        """The one-time code that carries a finished provider sign-in to the page (60 s)."""
        return f"{self.prefix}oidccode:{digest}"

    def staff_session(self, digest: str) -> str:
        """A staff member's session: their id and session epoch, with the session's TTL."""
        return f"{self.prefix}staffsess:{digest}"

    def events(self, account_id: UUID) -> str:
        """The account's live events of the last minutes (a stream), for replay."""
        return self._of_account("events", account_id)

    def events_channel(self, account_id: UUID) -> str:
        """The pub/sub channel of the account's live events (every instance listens)."""
        return f"{self.prefix}ev:{account_tag(account_id)}"

    def contact(self, account_id: UUID) -> str:
        """Present while the account is in contact with Support (after a check)."""
        return self._of_account("contact", account_id)

    def confirmation(self, subject: str) -> str:
        """The pending agent-started confirmation of a verification subject (an account's
        tag, or an address's digest: a request for no account is stored the same way)."""
        return f"{self.prefix}conf:{{{subject}}}"

    def confirmation_decision(self, subject: str, confirmation_id: str) -> str:
        return f"{self.prefix}confst:{{{subject}}}:{confirmation_id}"

    def confirmation_index(self, confirmation_id: str) -> str:
        """Which subject a confirmation id belongs to, its agent and its expiry."""
        return f"{self.prefix}confidx:{confirmation_id}"

    def confirmation_channel(self, confirmation_id: str) -> str:
        return f"{self.prefix}confch:{confirmation_id}"

    def report_used(self, account_id: UUID, digest: str) -> str:
        """A "This wasn't me" link that was used (links work once)."""
        return f"{self._of_account('reportused', account_id)}:{digest}"

    def password_reset(self, account_id: UUID) -> str:
        """The account's newest password-reset request (only its link works), for 30 min."""
        return self._of_account("pwreset", account_id)

    def passkey_registration(self, account_id: UUID) -> str:
        """The challenge of the account's passkey being added (single use, 5 minutes)."""
        return self._of_account("pkreg", account_id)

    def passkey_sign_in(self, challenge_digest: str) -> str:
        """A passkey sign-in's challenge (single use, 5 minutes)."""
        return f"{self.prefix}pkauth:{challenge_digest}"

    def rate_limit(self, limit: str, subject: str) -> str:
        """A limit's log; `subject` is an account tag (the log shares the account's slot) or
        a keyed digest of an address or email."""
        return f"{self.prefix}rl:{limit}:{{{subject}}}"


def make_client(url: str, *, cluster: bool, timeout: float, pool_size: int) -> RedisClient:
    """A client whose commands and connects fail within `timeout`. A connection error is
    retried once: a restarted server leaves stale pooled connections, and the retry
    reconnects; a timeout is not retried, so a hung server costs one timeout, not several."""
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

    def script(self, name: str) -> AsyncScript:
        """`service/lua/<name>.lua`, called by EVALSHA (loaded again if Redis lost it)."""
        script: AsyncScript = self.client.register_script(load_lua(name))
        return script

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Bound one step (its retries included) by the timeout, and turn an outage into
        `Unavailable`."""
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
