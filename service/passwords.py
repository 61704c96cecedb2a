"""Password hashing (argon2id through passlib), always off the event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from passlib.context import CryptContext

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
_CONTEXT = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19_456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


log = logging.getLogger(__name__)
T = TypeVar("T")

# Sign-up accepts at most this many characters (4 bytes each in UTF-8 at worst = passlib's
# 4096-byte ceiling); a longer sign-in password cannot be right and must not reach passlib,
# which raises on it.
PASSWORD_MAX_LENGTH = 1024

# Hashing threads run at this nice level (Linux: per thread). The event loop keeps the CPU it
# needs while a storm of sign-ins hashes on whatever is left, so other requests stay fast.
HASHING_NICENESS = 10


def _lower_thread_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: hash at normal priority
        log.debug("could not lower the hashing threads' priority: %s", exc)


# One pool per size for the process (apps built in tests share it rather than each leaving
# idle threads behind).
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _hashing_threads(count: int) -> ThreadPoolExecutor:
    pool = _POOLS.get(count)
    if pool is None:
        pool = _POOLS[count] = ThreadPoolExecutor(
            max_workers=count, thread_name_prefix="argon2", initializer=_lower_thread_priority
        )
    return pool


class PasswordHasher:
    """Hashes in threads of its own (argon2 releases the GIL) at a lower OS priority, at most
    `concurrency` at a time so that a storm of sign-ins queues instead of exhausting memory
    and threads."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._threads = _hashing_threads(concurrency)
        self.in_progress = 0  # hashes running in threads right now (for metrics and tests)
        # Verified against for unknown emails, so both cases cost one argon2 run.
        self._dummy_hash = _CONTEXT.hash(secrets.token_urlsafe(16))

    async def _run(self, func: Callable[..., T], *args: str) -> T:
        async with self._slots:
            self.in_progress += 1
            try:
                return await asyncio.get_running_loop().run_in_executor(self._threads, func, *args)
            finally:
                self.in_progress -= 1

    async def hash(self, password: str) -> str:
        result: str = await self._run(_CONTEXT.hash, password)
        return result

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Constant-work check: with no stored hash, burn the same time and answer False."""
        if len(password) > PASSWORD_MAX_LENGTH:
            password, password_hash = password[:PASSWORD_MAX_LENGTH], None
        if password_hash is None:
            await self._run(_CONTEXT.verify, password, self._dummy_hash)
            return False
        return bool(await self._run(_CONTEXT.verify, password, password_hash))
