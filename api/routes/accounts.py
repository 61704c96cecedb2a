from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import ClientAddress, ServicesDep
from api.problems import problem_responses
from schemas.accounts import AccountCreate, AccountOut
from service.errors import PasswordSigninDisabled

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post(
    "/accounts",
    summary="Create an account",
    status_code=status.HTTP_201_CREATED,
    response_model=AccountOut,
    responses=problem_responses(400, 403, 409, 413, 422, 429, 503),
)
async def create_account(
    body: AccountCreate, services: ServicesDep, address: ClientAddress
) -> AccountOut:
    if not services.settings.password_signin:
        raise PasswordSigninDisabled()
    await services.limits.account_create(address=address)
    return AccountOut.of(await services.accounts.register(body.email, body.password))
