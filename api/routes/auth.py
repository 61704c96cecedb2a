from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import JSONResponse

from api.deps import ClientAddress, CurrentUser, ServicesDep
from api.problems import problem_responses, service_error_response
from schemas.auth import PasswordGrantForm, TokenOut
from schemas.mfa import InvalidCodeProblem, MfaRequiredProblem, MfaTokenIn
from service.accounts import normalize_email
from service.container import Services
from service.devices import DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE
from service.errors import MfaRequired, PasswordSigninDisabled

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def _with_401(model: type, description: str, *others: int) -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(*others)
    responses[401] = {"model": model, "description": description}
    return responses


@router.post(
    "/token",
    summary="Sign in with email and password (OAuth2 password grant)",
    description=(
        "With two-factor sign-in on and the right password, the answer is 401 `mfa_required` "
        "with an `mfa_token` (single use, valid 5 minutes) instead of a token: finish at "
        "POST /v1/auth/token/mfa."
    ),
    response_model=TokenOut,
    responses=_with_401(
        MfaRequiredProblem,
        "`invalid_credentials`; or `mfa_required` with `mfa_token` (the password was right)",
        400,
        403,
        413,
        422,
        429,
        503,
    ),
)
async def create_token(
    form: Annotated[PasswordGrantForm, Form()],
    services: ServicesDep,
    address: ClientAddress,
    request: Request,
    response: Response,
) -> TokenOut | JSONResponse:
    if not services.settings.password_signin:
        raise PasswordSigninDisabled()
    email = normalize_email(form.username)
    device = services.devices.device_for(request.cookies.get(DEVICE_COOKIE), email)
    # Before the password is hashed: a refused try costs no argon2 work and reveals nothing.
    attempt = await services.limits.sign_in(address=address, email=email, device=device)
    account_id = await services.accounts.authenticate(form.username, form.password)
    await services.limits.signed_in(attempt)
    cookie = services.devices.issue(email, device)
    await services.accounts.remember_language(account_id, request.headers.get("accept-language"))
    try:
        token = await services.mfa.sign_in_with_password(account_id)
    except MfaRequired as exc:
        # The password was right: the browser is a known device for the account already.
        answer = service_error_response(exc)
        _set_device_cookie(answer, cookie, request, services)
        return answer
    _set_device_cookie(response, cookie, request, services)
    return TokenOut(access_token=token, expires_in=services.sessions.ttl_seconds)


def _set_device_cookie(
    response: Response, value: str, request: Request, services: Services
) -> None:
    """The device cookie: HttpOnly, SameSite=Strict, sent to the sign-in routes only, and
    Secure when the page is served over TLS (directly, or behind HSTS)."""
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_MAX_AGE,
        path="/v1/auth",
        secure=request.url.scheme == "https" or services.settings.hsts_seconds > 0,
        httponly=True,
        samesite="strict",
    )


@router.post(
    "/token/mfa",
    summary="Second sign-in step: an mfa_token and a TOTP or recovery code",
    description=(
        "`code` is the current code from the authenticator app or one unused recovery code "
        "(which is then spent). 401 `invalid_code` for a wrong code or a dead `mfa_token` "
        "(`attempts_left` says how many more codes it takes); 429 `mfa_locked` when the "
        "account's wrong-code limit is reached (`Retry-After`)."
    ),
    response_model=TokenOut,
    responses=_with_401(
        InvalidCodeProblem, "`invalid_code`: wrong code or dead mfa_token", 400, 413, 422, 429, 503
    ),
)
async def create_token_with_code(body: MfaTokenIn, services: ServicesDep) -> TokenOut:
    token = await services.mfa.sign_in_with_code(body.mfa_token, body.code)
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
    await services.events.end_streams(user.account_id)  # its live pages close at once
