"""User sessions: opaque tokens whose keyed digests live in Redis with a TTL."""

from __future__ import annotations

from uuid import UUID

from service.keys import keyed_digest
from service.redis_store import RedisStore
from service.tokens import SESSION_TOKEN_PREFIX, new_token


class SessionStore:
    def __init__(self, redis: RedisStore, key: bytes, ttl_seconds: int) -> None:
        self._redis = redis
        self._key = key
        self.ttl_seconds = ttl_seconds

    def _redis_key(self, token: str) -> str:
        # Keyed digest: a dump of Redis holds no usable token.
        return self._redis.keys.session(keyed_digest(self._key, token).hex())

    async def create(self, account_id: UUID) -> str:
        token = new_token(SESSION_TOKEN_PREFIX)
        async with self._redis.guard():
            await self._redis.client.set(
                self._redis_key(token), account_id.bytes, ex=self.ttl_seconds
            )
        return token

    async def account_for(self, token: str) -> UUID | None:
        if not token.startswith(SESSION_TOKEN_PREFIX):
            return None
        async with self._redis.guard():
            raw = await self._redis.client.get(self._redis_key(token))
        return UUID(bytes=raw) if isinstance(raw, bytes) else None

    async def revoke(self, token: str) -> None:
        async with self._redis.guard():
            await self._redis.client.delete(self._redis_key(token))
