from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response, status

from api.deps import ClientAddress, CurrentUser, ServicesDep
from api.problems import problem_responses
from schemas.auth import PasswordGrantForm, TokenOut

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post(
    "/token",
    summary="Sign in with email and password (OAuth2 password grant)",
    response_model=TokenOut,
    responses=problem_responses(400, 401, 413, 422, 429, 503),
)
async def create_token(
    form: Annotated[PasswordGrantForm, Form()],
    services: ServicesDep,
    address: ClientAddress,
) -> TokenOut:
    # Before the password is hashed: a refused try costs no argon2 work and reveals nothing.
    await services.limits.sign_in(address=address, email=form.username)
    account_id = await services.accounts.authenticate(form.username, form.password)
    token = await services.sessions.create(account_id)
    return TokenOut(access_token=token, expires_in=services.sessions.ttl_seconds)


@router.post(
    "/logout",
    summary="End this session; the token stops working at once",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 503),
)
async def logout(user: CurrentUser, services: ServicesDep) -> None:
    await services.sessions.revoke(user.token)
