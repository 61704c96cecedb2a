"""Request dependencies as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer

from service.container import Services
from service.errors import Unauthenticated
from service.models import Agent


async def get_services(request: Request) -> Services:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a thread
    # hop on every request for one attribute read.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

# Two schemes so the OpenAPI document (and Swagger's Authorize) tells them apart.
_user_bearer = OAuth2PasswordBearer(
    tokenUrl="/v1/auth/token",
    scheme_name="UserToken",
    description="A session token from POST /v1/auth/token.",
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


# The two below read the services from the app state themselves rather than through
# `ServicesDep`: every dependency node costs FastAPI work on every request, and these two
# are on every authenticated request.


async def current_user(
    request: Request, token: Annotated[str | None, Depends(_user_bearer)]
) -> UserSession:
    if token:
        services: Services = request.app.state.services
        account_id = await services.sessions.account_for(token)
        if account_id is not None:
            return UserSession(account_id, token)
    raise Unauthenticated()


async def current_agent(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_agent_bearer)],
) -> Agent:
    if credentials is not None:
        services: Services = request.app.state.services
        agent = await services.agents.authenticate(credentials.credentials)
        if agent is not None:
            return agent
    raise Unauthenticated()


CurrentUser = Annotated[UserSession, Depends(current_user)]
CurrentAgent = Annotated[Agent, Depends(current_agent)]
