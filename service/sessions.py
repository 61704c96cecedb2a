"""User sessions: opaque tokens whose keyed digests live in Redis with a TTL.

A token is `sps_` + the account's tag (22 characters, see `redis_store.account_tag`) + 256
random bits. The tag is not a secret and proves nothing (the session key is the keyed digest
of the whole token, so a changed tag names no session); it says which account's Redis slot
the session lives in. That lets a script of the account (PIN issuance) check the session in
the same atomic step as its own work: one Redis round trip for a request, not two.

Each account also has a set of its session digests (`sessidx:{account}`), so every session of
an account can be ended at once (turning two-factor sign-in on ends the password-only ones)."""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from uuid import UUID

from service.keys import keyed_digest
from service.redis_store import RedisStore, account_tag
from service.tokens import SESSION_TOKEN_PREFIX

_TAG_LENGTH = 22  # unpadded base64url of a 16-byte account id
_TOKEN_LENGTH = len(SESSION_TOKEN_PREFIX) + _TAG_LENGTH + 43  # 43: 32 random bytes


@dataclass(frozen=True)
class SessionClaim:
    """What a token says before Redis is asked: the account it names and the key its session
    would have. `redis_key` holding `account_id.bytes` is what makes the claim true."""

    account_id: UUID
    redis_key: str


MFA_MARK = b"m"


@dataclass(frozen=True)
class Believed:
    """A caller whose credential was checked already and has no session of ours: the
    bearer of the OpenID provider's access token, with whether its `amr` says MFA."""

    account_id: UUID
    mfa: bool


class SessionStore:
    def __init__(self, redis: RedisStore, key: bytes, ttl_seconds: int) -> None:
        self._redis = redis
        self._key = key
        self.ttl_seconds = ttl_seconds

    def _digest(self, token: str) -> str:
        # Keyed digest: a dump of Redis holds no usable token.
        return keyed_digest(self._key, token).hex()

    def claim(self, token: str) -> SessionClaim | None:
        """Parse a token (no I/O); None if it cannot be a session token of ours."""
        if len(token) != _TOKEN_LENGTH or not token.startswith(SESSION_TOKEN_PREFIX):
            return None
        tag = token[len(SESSION_TOKEN_PREFIX) : len(SESSION_TOKEN_PREFIX) + _TAG_LENGTH]
        try:
            raw = base64.urlsafe_b64decode(tag + "==")
        except (binascii.Error, ValueError):
            return None
        if len(raw) != 16:
            return None
        account_id = UUID(bytes=raw)
        if account_tag(account_id) != tag:
            return None  # not the canonical spelling of an id
        return SessionClaim(account_id, self._redis.keys.session(account_id, self._digest(token)))

    async def create(self, account_id: UUID, *, mfa: bool = False) -> str:
        token = SESSION_TOKEN_PREFIX + account_tag(account_id) + secrets.token_urlsafe(32)
        digest = self._digest(token)
        index = self._redis.keys.account_sessions(account_id)
        # Indexed before the session exists, so a sweep of the index never misses it. The
        # index lives as long as the newest session; stale members are harmless. Index and
        # session share the account's slot: one round trip, applied in order.
        async with (
            self._redis.guard(),
            self._redis.client.pipeline(transaction=False) as pipe,
        ):
            pipe.sadd(index, digest)
            pipe.expire(index, self.ttl_seconds)
            pipe.set(
                self._redis.keys.session(account_id, digest),
                account_id.bytes + (MFA_MARK if mfa else b""),
                ex=self.ttl_seconds,
            )
            await pipe.execute()
        return token

    async def account_for(self, token: str) -> UUID | None:
        claim = self.claim(token)
        if claim is None:
            return None
        async with self._redis.guard():
            raw = await self._redis.client.get(claim.redis_key)
        return claim.account_id if raw is not None and raw[:16] == claim.account_id.bytes else None

    async def revoke(self, token: str) -> None:
        claim = self.claim(token)
        if claim is None:
            return
        async with self._redis.guard():
            await self._redis.client.delete(claim.redis_key)

    async def revoke_all(self, account_id: UUID, *, keep: str | None = None) -> int:
        """End every session of the account except `keep`; returns how many keys were ended."""
        index = self._redis.keys.account_sessions(account_id)
        kept = self._digest(keep) if keep else None
        async with self._redis.guard():
            members = await self._redis.client.smembers(index)
            # decode_responses=False: members are bytes.
            names = [m.decode() if isinstance(m, bytes) else m for m in members]
            digests = [name for name in names if name != kept]
            if not digests:
                return 0
            async with self._redis.client.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.delete(self._redis.keys.session(account_id, digest))
                pipe.srem(index, *digests)
                replies = await pipe.execute()
        return sum(int(r) for r in replies[:-1])

    async def age_seconds(self, token: str) -> float | None:
        """How long ago the session was made (from its remaining TTL), or None."""
        claim = self.claim(token)
        if claim is None:
            return None
        async with self._redis.guard():
            left_ms = await self._redis.client.pttl(claim.redis_key)
        if left_ms < 0:
            return None
        return max(0.0, self.ttl_seconds - left_ms / 1000)
