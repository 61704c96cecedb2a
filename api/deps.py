"""Request dependencies as `Annotated` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer

from service.container import Services
from service.errors import Forbidden, Unauthenticated
from service.models import Agent
from service.sessions import Believed, SessionClaim
from service.staff import Role, Staff, has_role
from service.tokens import AGENT_KEY_PREFIX, SESSION_TOKEN_PREFIX, STAFF_SESSION_PREFIX


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
    description=(
        "An API key for agent tooling (`support-pin agents create NAME`, or POST "
        "/v1/admin/api-keys): it verifies PINs and nothing else."
    ),
    auto_error=False,
)
_staff_bearer = HTTPBearer(
    scheme_name="StaffToken",
    description=(
        "A staff member's session token (POST /v1/staff/auth/token/mfa, or single sign-on). "
        "Roles nest: agent < supervisor < admin."
    ),
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


@dataclass(frozen=True)
class Caller:
    """Whoever a bearer token names, for routes of staff and tooling."""

    agent: Agent | None = None  # an API key, or a staff member as a verifier
    staff: Staff | None = None
    customer: bool = False


async def _caller(services: Services, token: str) -> Caller:
    """401 for no credential or a bad one; a customer is a caller too (then 403)."""
    if token.startswith(AGENT_KEY_PREFIX):
        agent = await services.agents.authenticate(token)
        if agent is not None:
            return Caller(agent=agent)
    elif token.startswith(STAFF_SESSION_PREFIX):
        staff = await services.staff.session(token)
        if staff is not None:
            return Caller(agent=staff.as_agent(), staff=staff)
    elif token.startswith(SESSION_TOKEN_PREFIX):
        if await services.sessions.account_for(token) is not None:
            return Caller(customer=True)
    elif services.oidc is not None:
        await services.oidc.tokens.verify(token)  # `InvalidToken` if it is not the provider's
        return Caller(customer=True)
    raise Unauthenticated()


async def current_agent(
    services: ServicesDep,
    key: Annotated[HTTPAuthorizationCredentials | None, Depends(_agent_bearer)],
    staff_token: Annotated[HTTPAuthorizationCredentials | None, Depends(_staff_bearer)],
) -> Agent:
    """An API key, or a staff member with the `agent` role or above."""
    credentials = key or staff_token
    if credentials is None:
        raise Unauthenticated()
    caller = await _caller(services, credentials.credentials)
    if caller.agent is None or (
        caller.staff is not None and not has_role(caller.staff.role, "agent")
    ):
        raise Forbidden()
    return caller.agent


def staff_with(role: Role) -> Callable[..., Awaitable[Staff]]:
    """A dependency: the signed-in staff member, who must have `role` (or a higher one)."""

    async def dependency(
        services: ServicesDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_staff_bearer)],
    ) -> Staff:
        if credentials is None:
            raise Unauthenticated()
        caller = await _caller(services, credentials.credentials)
        if caller.staff is None or not has_role(caller.staff.role, role):
            raise Forbidden()
        return caller.staff

    return dependency


async def signed_in_staff(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_staff_bearer)],
) -> tuple[Staff, str]:
    """The signed-in staff member (any role) and their session token."""
    if credentials is not None:
        staff = await services.staff.session(credentials.credentials)
        if staff is not None:
            return staff, credentials.credentials
    raise Unauthenticated()


CurrentUser = Annotated[UserSession, Depends(current_user)]
UserSessionClaim = Annotated[SessionClaim | Believed, Depends(session_claim)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]
Supervisor = Annotated[Staff, Depends(staff_with("supervisor"))]
Admin = Annotated[Staff, Depends(staff_with("admin"))]
SignedInStaff = Annotated[tuple[Staff, str], Depends(signed_in_staff)]


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
