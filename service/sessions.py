"""User sessions: opaque tokens whose keyed digests live in Redis with a TTL.

Each account also has a set of its session digests (`sessidx:{account}`), so every session of
an account can be ended at once (turning two-factor sign-in on ends the password-only ones)."""

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
        digest = keyed_digest(self._key, token).hex()
        index = self._redis.keys.account_sessions(str(account_id))
        async with self._redis.guard():
            # Indexed before the session exists, so a sweep of the index never misses it.
            # The index lives as long as the newest session; stale members are harmless.
            async with self._redis.client.pipeline(transaction=False) as pipe:
                pipe.sadd(index, digest)
                pipe.expire(index, self.ttl_seconds)
                await pipe.execute()
            await self._redis.client.set(
                self._redis.keys.session(digest), account_id.bytes, ex=self.ttl_seconds
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

    async def revoke_all(self, account_id: UUID, *, keep: str | None = None) -> int:
        """End every session of the account except `keep`; returns how many keys were ended."""
        index = self._redis.keys.account_sessions(str(account_id))
        kept = keyed_digest(self._key, keep).hex() if keep else None
        async with self._redis.guard():
            members = await self._redis.client.smembers(index)
            # decode_responses=False: members are bytes.
            names = [m.decode() if isinstance(m, bytes) else m for m in members]
            digests = [name for name in names if name != kept]
            if not digests:
                return 0
            # One key per command (session keys live in different cluster slots), one round trip.
            async with self._redis.client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.delete(self._redis.keys.session(digest))
                pipe.srem(index, *digests)
                replies = await pipe.execute()
        return sum(int(r) for r in replies[:-1])
