"""Password hashing (argon2id through passlib), always off the event loop."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

from passlib.context import CryptContext

T = TypeVar("T")

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
_CONTEXT = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=19_456,
    argon2__time_cost=2,
    argon2__parallelism=1,
)


# Sign-up accepts at most this many characters (4 bytes each in UTF-8 at worst = passlib's
# 4096-byte ceiling); a longer sign-in password cannot be right and must not reach passlib,
# which raises on it (found by schemathesis: it was a 500).
PASSWORD_MAX_LENGTH = 1024


class PasswordHasher:
    """Hashes in worker threads (argon2 releases the GIL), at most `concurrency` at a time
    so that a storm of sign-ins queues instead of exhausting memory and threads."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.in_progress = 0  # hashes running in threads right now (for metrics and tests)
        # Verified against for unknown emails, so both cases cost one argon2 run.
        self._dummy_hash = _CONTEXT.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await self._in_thread(_CONTEXT.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Constant-work check: with no stored hash, burn the same time and answer False."""
        if len(password) > PASSWORD_MAX_LENGTH:
            password, password_hash = password[:PASSWORD_MAX_LENGTH], None
        if password_hash is None:
            await self._in_thread(_CONTEXT.verify, password, self._dummy_hash)
            return False
        return bool(await self._in_thread(_CONTEXT.verify, password, password_hash))

    async def _in_thread(self, function: Callable[..., T], *args: str) -> T:
        async with self._slots:
            self.in_progress += 1
            try:
                return await asyncio.to_thread(function, *args)
            finally:
                self.in_progress -= 1
