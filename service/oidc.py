"""The company's OpenID Connect provider: its keys, its access tokens as credentials, and the
accounts its people sign in to.

The service is a resource server here (RFC 9068, RFC 8725): a token is believed only when an
asymmetric key the provider publishes signed it, names that key (`kid`), comes from exactly
`OIDC_ISSUER`, is meant for `OIDC_AUDIENCE` and is within its lifetime (60 s leeway). A `kid`
the provider does not publish makes the service read the provider's JWKS again, at most once
per 60 s, so a rotated key works at once while a flood of made-up `kid`s costs the provider
nothing. Sign-in in the browser (the authorization code flow) is Authlib's, in `api/sso.py`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from service import emails
from service.errors import InvalidToken, OidcFailed, Unavailable
from service.keys import keyed_digest
from service.persistence import identities as sql
from service.persistence.db import Database
from service.redis_store import RedisStore

log = logging.getLogger(__name__)

# Asymmetric signatures only: `none` and the HMAC family are never believed (an HS256 token
# "signed" with the provider's public key is the classic forgery).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
)
LEEWAY_SECONDS = 60
JWKS_REFETCH_SECONDS = 60.0
# `amr` values (RFC 8176) that say more than one factor was used.
MFA_METHODS = frozenset({"mfa", "otp", "hwk", "swk"})
# Header `typ`s an access token may carry; an ID token passed off as one says so otherwise.
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt", "jwt"})


def is_mfa(amr: object) -> bool:
    return isinstance(amr, list) and any(method in MFA_METHODS for method in amr)


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says a person is."""

    issuer: str
    subject: str
    email: str | None
    email_verified: bool | None
    mfa: bool
    issued_at: float | None = None  # the token's `iat`

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> ProviderIdentity:
        email = claims.get("email")
        verified = claims.get("email_verified")
        return cls(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            email_verified=verified if isinstance(verified, bool) else None,
            mfa=is_mfa(claims.get("amr")),
            issued_at=float(claims["iat"]) if isinstance(claims.get("iat"), int | float) else None,
        )


class ProviderKeys:
    """The provider's discovery document and signing keys, read once and kept; an unknown
    `kid` refetches the keys, at most once per `refetch_seconds` (single-flight)."""

    def __init__(
        self,
        issuer: str,
        http: httpx2.AsyncClient,
        *,
        refetch_seconds: float = JWKS_REFETCH_SECONDS,
    ) -> None:
        self.issuer = issuer  # compared exactly: some providers' issuers end in '/', some not
        self._http = http
        self._refetch_seconds = refetch_seconds
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._refetched_at = -float("inf")
        self._retry_at = -float("inf")
        self._lock = asyncio.Lock()
        self.fetches = 0  # JWKS reads so far (exposed for operations and tests)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            document = await self._get_json(self.discovery_url)
            if document.get("issuer") != self.issuer or not document.get("jwks_uri"):
                log.error("the provider's discovery document does not match OIDC_ISSUER")
                raise Unavailable()
            self._metadata = document
        return self._metadata

    async def key_set_with(self, kid: str) -> KeySet | None:
        """The provider's keys if one of them is `kid`, else None. The first call reads
        them; an unknown `kid` reads them again at most once per `refetch_seconds`, so a
        rotated key is seen at once and a flood of made-up `kid`s asks the provider once."""
        if kid in self._kids:
            return self._keys
        async with self._lock:  # single-flight: one read however many requests wait
            now = time.monotonic()
            if self._keys is None:
                if now >= self._retry_at:
                    await self._fetch(now)
            elif kid not in self._kids and now - self._refetched_at >= self._refetch_seconds:
                self._refetched_at = now
                await self._fetch(now)
        return self._keys if kid in self._kids else None

    async def _fetch(self, now: float) -> None:
        self.fetches += 1
        # A provider that does not answer is asked again after a second, not per request.
        self._retry_at = now + 1.0
        metadata = await self.metadata()
        document = await self._get_json(str(metadata["jwks_uri"]))
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            log.error("the provider's JWKS could not be read")
            raise Unavailable() from None
        self._keys = keys
        self._kids = frozenset(str(key.kid) for key in keys.keys if key.kid)

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx2.HTTPError, ValueError):
            log.warning("the OpenID provider did not answer %s", url)
            raise Unavailable() from None
        if not isinstance(document, dict):
            raise Unavailable()
        return document


class AccessTokens:
    """Checks the provider's access tokens (RFC 9068 JWTs)."""

    def __init__(self, keys: ProviderKeys, audience: str) -> None:
        self._keys = keys
        self._audience = audience

    async def verify(self, token: str) -> ProviderIdentity:
        """Who the token names, or `InvalidToken` (`Unavailable` if the provider's keys
        cannot be read)."""
        try:
            header = extract_compact(token.encode()).protected
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise InvalidToken() from None
        alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
        if alg not in ASYMMETRIC_ALGORITHMS or not isinstance(kid, str) or not kid:
            raise InvalidToken()
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES):
            raise InvalidToken()
        keys = await self._keys.key_set_with(kid)
        if keys is None:
            raise InvalidToken()
        claims_registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self._keys.issuer},
            aud={"essential": True, "value": self._audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            decoded = jwt.decode(token, keys, algorithms=[alg])
            claims_registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            raise InvalidToken() from None
        return ProviderIdentity.from_claims(decoded.claims)


class LinkedAccounts:
    """Accounts of the provider's people, found by (`iss`, `sub`) and made on first sight."""

    def __init__(self, db: Database, issuer: str) -> None:
        self._db = db
        self.issuer = issuer

    async def account_for(self, identity: ProviderIdentity) -> UUID:
        """The account linked to the identity. On first sight it links an existing account
        with the same address only when the provider says the address is verified; an
        address the provider says is not verified is never stored (whoever signed up at the
        provider with someone else's address must not become findable by it)."""
        email = _usable_email(identity)
        vouched = email if identity.email_verified is True else None
        async with self._db.connection() as conn:
            return await sql.link_subject(
                conn,
                identity.issuer,
                identity.subject,
                link_email=vouched,
                email=email,
                email_skeleton=emails.email_skeleton(email) if email else None,
            )

    async def account_by_subject(self, subject: str) -> UUID | None:
        async with self._db.connection() as conn:
            return await sql.account_id_by_subject(conn, self.issuer, subject)


def _usable_email(identity: ProviderIdentity) -> str | None:
    if identity.email is None or identity.email_verified is False:
        return None
    try:
        address = emails.normalize_email(identity.email)
    except emails.InvalidEmailAddress:
        return None
    return None if emails.mixes_confusable_scripts(address) else address


@dataclass(frozen=True)
class Redeemed:
    payload: bytes
    next_path: str


class SignInCodes:
    """One-time codes that carry a finished provider sign-in from the callback to the page,
    so no session token ever appears in a URL: single use, 60 s, and only the code's keyed
    digest is stored, with what the sign-in established (`payload`) and where to go."""

    TTL_SECONDS = 60

    def __init__(self, redis: RedisStore, key: bytes) -> None:
        self._redis = redis
        self._key = key

    def _redis_key(self, code: str) -> str:
        return self._redis.keys.sign_in_code(keyed_digest(self._key, code).hex())

    async def issue(self, kind: bytes, payload: bytes, next_path: str) -> str:
        code = secrets.token_urlsafe(32)
        value = kind + b"|" + payload + b"|" + next_path.encode()
        async with self._redis.guard():
            await self._redis.client.set(self._redis_key(code), value, ex=self.TTL_SECONDS)
        return code

    async def redeem(self, kind: bytes, code: str) -> Redeemed:
        """What the code's sign-in established; `OidcFailed` for an unknown, used or expired
        code, or one of another kind (a customer's code is no staff sign-in)."""
        if not 20 <= len(code) <= 64:
            raise OidcFailed("code")
        async with self._redis.guard():
            value = await self._redis.client.getdel(self._redis_key(code))
        if not isinstance(value, bytes):
            raise OidcFailed("code")
        found_kind, _, rest = value.partition(b"|")
        payload, _, next_path = rest.rpartition(b"|")
        if found_kind != kind or not payload:
            raise OidcFailed("code")
        return Redeemed(payload, next_path.decode())


@dataclass
class CustomerProvider:
    """Everything of the customers' provider, when `OIDC_ISSUER` is set."""

    keys: ProviderKeys
    tokens: AccessTokens
    accounts: LinkedAccounts
    http: httpx2.AsyncClient

    async def account_for_token(self, token: str) -> tuple[UUID, bool]:
        """The account of a provider's access token, and whether its sign-in used MFA."""
        identity = await self.tokens.verify(token)
        return await self.accounts.account_for(identity), identity.mfa

    async def close(self) -> None:
        await self.http.aclose()
