"""Request dependencies as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer

from service.container import Services
from service.errors import Unauthenticated
from service.models import Agent
from service.sessions import Believed, SessionClaim
from service.tokens import SESSION_TOKEN_PREFIX


async def get_services(request: Request) -> Services:
    """The services the lifespan opened (`api.app.State`)."""
    # Async: FastAPI would run a plain `def` dependency in a worker thread.
    services: Services = request.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

# Two schemes so the OpenAPI document (and Swagger's Authorize) tells them apart.
_user_bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token",
    scheme_name="UserToken",
    description=(
        "A session token from POST /v1/auth/token (or from a sign-in through the company's "
        "OpenID provider); or, when OIDC_ISSUER is set, an access token (a JWT) that the "
        "provider issued for this service's audience."
    ),
    auto_error=False,
)
_agent_bearer = HTTPBearer(
    scheme_name="AgentKey",
    description="An agent API key made by `support-pin agents create NAME`.",
    auto_error=False,
)


@dataclass(frozen=True)
class UserSession:
    account_id: UUID
    token: str
    # True for the bearer of the provider's access token (no session of ours to end).
    from_provider: bool = False


def _is_provider_token(services: Services, token: str) -> bool:
    return services.oidc is not None and not token.startswith(SESSION_TOKEN_PREFIX)


async def current_user(
    services: ServicesDep, token: Annotated[str | None, Depends(_user_bearer)]
) -> UserSession:
    if token:
        if services.oidc is not None and _is_provider_token(services, token):
            account_id, _ = await services.oidc.account_for_token(token)
            return UserSession(account_id, token, from_provider=True)
        found = await services.sessions.account_for(token)
        if found is not None:
            return UserSession(found, token)
    raise Unauthenticated()


async def session_claim(
    services: ServicesDep, token: Annotated[str | None, Depends(_user_bearer)]
) -> SessionClaim | Believed:
    """The session a user token names, not yet checked: for a route whose Redis script
    checks the session in the same step as its own work (PIN issuance). A provider's
    access token is checked here: it has no session."""
    if token and services.oidc is not None and _is_provider_token(services, token):
        account_id, mfa = await services.oidc.account_for_token(token)
        return Believed(account_id, mfa)
    claim = services.sessions.claim(token) if token else None
    if claim is None:
        raise Unauthenticated()
    return claim


async def current_agent(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_agent_bearer)],
) -> Agent:
    if credentials is not None:
        agent = await services.agents.authenticate(credentials.credentials)
        if agent is not None:
            return agent
    raise Unauthenticated()


CurrentUser = Annotated[UserSession, Depends(current_user)]
UserSessionClaim = Annotated[SessionClaim | Believed, Depends(session_claim)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]


def forwarded_client(
    peer: str, forwarded_for: list[str], trusted: Sequence[IPv4Network | IPv6Network]
) -> str:
    """The client address: the socket peer, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For address that is not itself a trusted proxy. Entries left of it
    are whatever the client chose to send and are never believed."""
    current = peer
    hops = [part.strip() for header in forwarded_for for part in header.split(",")]
    while _is_trusted(current, trusted) and hops:
        candidate = _strip_port(hops.pop())
        try:
            current = str(ip_address(candidate))
        except ValueError:
            return current  # garbage from behind the last trusted hop: stop at that hop
    return current


def _strip_port(hop: str) -> str:
    """`1.2.3.4:5678` and `[2001:db8::1]:443` (some proxies add the port) → the address."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def _is_trusted(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(request: Request, services: ServicesDep) -> str:
    """The address per-address limits count against (see `TRUSTED_PROXIES`)."""
    peer = request.client.host if request.client else "unknown"
    trusted = services.settings.trusted_proxies
    if not trusted:
        return peer
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), trusted)


ClientAddress = Annotated[str, Depends(client_address)]
