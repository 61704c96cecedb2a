"""Sign-in in the browser through an OpenID Connect provider: Authlib's Starlette client runs
the authorization code flow with PKCE (S256), `state` and `nonce`, and checks the ID token.

The flow's state (PKCE verifier, nonce, where to land) is kept in Redis through Authlib's
cache interface, so it is single use and every instance can finish a flow another began;
the browser holds only a signed marker cookie, scoped to the flow's paths, which binds the
state to the browser that started it (RFC 6749 §10.12)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import Request
from joserfc.errors import JoseError

from service.errors import OidcFailed, Unavailable
from service.oidc import LEEWAY_SECONDS, ProviderIdentity
from service.redis_store import RedisStore

FLOW_COOKIE = "support_pin_sso"
# Both flows' routes: /v1/auth/oidc/… (customers) and /v1/staff/auth/oidc/… (staff).
FLOW_COOKIE_PATH = "/v1"
# The longest a person may spend at the provider's sign-in page.
FLOW_SECONDS = 600


class FlowStateCache:
    """Authlib's cache interface (`get`, `set`, `delete`) on Redis. Key names hold a digest
    of Authlib's key, which contains the `state` value."""

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    def _key(self, key: str) -> str:
        return self._redis.keys.sign_in_flow(hashlib.sha256(key.encode()).hexdigest())

    async def get(self, key: str) -> bytes | None:
        async with self._redis.guard():
            value = await self._redis.client.get(self._key(key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: str, expires: int | None = None) -> None:
        async with self._redis.guard():
            # Authlib asks for an hour; a flow here lives at most FLOW_SECONDS.
            ttl = min(expires or FLOW_SECONDS, FLOW_SECONDS)
            await self._redis.client.set(self._key(key), value, ex=ttl)

    async def delete(self, key: str) -> None:
        async with self._redis.guard():
            await self._redis.client.delete(self._key(key))


@dataclass(frozen=True)
class FinishedSignIn:
    identity: ProviderIdentity
    claims: dict[str, Any]  # the ID token's, for what a caller reads beyond the identity
    next_path: str


class SignInFlow:
    """One provider's authorization code flow (customers' or staff's)."""

    def __init__(
        self,
        registry: OAuth,
        name: str,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: str,
    ) -> None:
        self.issuer = issuer
        client = registry.register(
            name,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": scopes, "code_challenge_method": "S256", "timeout": 10.0},
        )
        if not isinstance(client, StarletteOAuth2App):
            raise TypeError("an OpenID Connect client was expected")
        self._client = client

    async def start(self, request: Request, redirect_uri: str, next_path: str) -> str:
        """The provider's authorization URL; the flow's state is saved for `finish`."""
        try:
            found = await self._client.create_authorization_url(redirect_uri)
        except (OAuthError, httpx2.HTTPError, ValueError, KeyError) as exc:
            raise Unavailable() from exc  # the provider's discovery document is unreachable
        await self._client.save_authorize_data(
            request, redirect_uri=redirect_uri, next_path=next_path, **found
        )
        return str(found["url"])

    async def finish(self, request: Request) -> FinishedSignIn:
        """Check the callback (state, then the code at the token endpoint, then the ID
        token: signature, `iss`, `aud`, `exp`, `nonce`). `OidcFailed` says which step
        failed; an error from the provider ends the flow too."""
        state = request.query_params.get("state")
        saved = (
            await self._client.framework.get_state_data(request.session, state) if state else None
        )
        if saved is None:
            raise OidcFailed("state")  # unknown, used, expired, or another browser's
        if request.query_params.get("error") or not request.query_params.get("code"):
            await self._client.framework.clear_state_data(request.session, state)
            raise OidcFailed("provider_error")
        try:
            token = await self._client.authorize_access_token(
                request,
                leeway=LEEWAY_SECONDS,
                claims_options={
                    "iss": {"essential": True, "value": self.issuer},
                    "sub": {"essential": True},
                },
            )
        except OAuthError as exc:
            raise OidcFailed("token") from exc
        except httpx2.HTTPError as exc:
            raise Unavailable() from exc
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise OidcFailed("id_token") from exc
        claims = token.get("userinfo")
        if not claims or not claims.get("sub"):
            raise OidcFailed("id_token")  # no ID token: not an OpenID Connect answer
        return FinishedSignIn(
            ProviderIdentity.from_claims(dict(claims)), dict(claims), str(saved["next_path"])
        )


def new_registry(redis: RedisStore) -> OAuth:
    return OAuth(cache=FlowStateCache(redis))
