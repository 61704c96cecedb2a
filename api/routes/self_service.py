"""Customers manage their own account: password change and reset, deletion, passkeys."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Request, Response, status

from api.deps import ClientAddress, CurrentUser, ServicesDep
from api.problems import problem_responses
from schemas.auth import TokenOut
from schemas.self_service import (
    AcceptedOut,
    AccountDeleteIn,
    PasskeyIn,
    PasskeyOut,
    PasskeySignInIn,
    PasskeysOut,
    PasswordChangeIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
)
from service.container import Services
from service.passkeys import Passkey, RelyingParty
from service.self_service import Reauthentication

me_router = APIRouter(prefix="/v1/me", tags=["me"])
auth_router = APIRouter(prefix="/v1/auth", tags=["auth"])

NO_CONTENT: dict[str, Any] = {
    "status_code": status.HTTP_204_NO_CONTENT,
    "response_class": Response,
}


@me_router.post(
    "/password",
    summary="Change the password",
    description=(
        "Every other session ends. 400 `invalid_credentials` for a wrong current password "
        "(counted like a failed sign-in); 422 `password_refused` for a new password the rules "
        "refuse; 409 `no_password` for an account that signs in through the company's "
        "identity provider only."
    ),
    responses=problem_responses(400, 401, 409, 413, 422, 429, 503),
    **NO_CONTENT,
)
async def change_password(
    body: PasswordChangeIn, user: CurrentUser, services: ServicesDep, address: ClientAddress
) -> None:
    await services.self_service.change_password(
        user.account_id,
        body.current_password,
        body.new_password,
        keep=None if user.from_provider else user.token,
        address=address,
    )


@auth_router.post(
    "/password-reset",
    summary="Ask for a password reset link by email",
    description=(
        "202 whatever the address: an account with it is sent a link (single use, valid 30 "
        "minutes; only the newest works). The answer is made before any lookup, so neither "
        "it nor its time tells whether the address has an account."
    ),
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=problem_responses(400, 413, 422, 429, 503),
)
async def request_password_reset(
    body: PasswordResetIn,
    services: ServicesDep,
    address: ClientAddress,
    background: BackgroundTasks,
) -> AcceptedOut:
    await services.limits.account_create(address=address)  # per address, like sign-ups
    background.add_task(services.self_service.request_reset, body.email)
    return AcceptedOut(status="accepted")


@auth_router.post(
    "/password-reset/confirm",
    summary="Set a new password with a reset link's token",
    description=(
        "Every session ends, the account's support PIN is revoked, and an email says so. "
        "400 `invalid_token` for a wrong, expired, replaced or used link."
    ),
    responses=problem_responses(400, 413, 422, 503),
    **NO_CONTENT,
)
async def confirm_password_reset(body: PasswordResetConfirmIn, services: ServicesDep) -> None:
    await services.self_service.confirm_reset(body.token, body.new_password)


@me_router.delete(
    "",
    summary="Delete the account",
    description=(
        "With the account's password (400 `invalid_credentials` when wrong); an account "
        "without one must have signed in within the last 5 minutes (else 403 "
        "`recent_sign_in_required`). Sessions, PIN state, two-factor sign-in and passkeys are "
        "gone and the address is free; audit rows stay, naming a pseudonym."
    ),
    responses=problem_responses(400, 401, 403, 413, 422, 429, 503),
    **NO_CONTENT,
)
async def delete_account(
    body: AccountDeleteIn, user: CurrentUser, services: ServicesDep, address: ClientAddress
) -> None:
    if user.from_provider:
        identity = await services.oidc.tokens.verify(user.token) if services.oidc else None
        issued = identity.issued_at if identity else None
        ago = time.time() - issued if issued is not None else None
    else:
        ago = await services.sessions.age_seconds(user.token)
    await services.self_service.delete_account(
        user.account_id, Reauthentication(body.password, ago), address=address
    )


# -- passkeys -------------------------------------------------------------------------------


def relying_party(request: Request, services: Services) -> RelyingParty:
    """WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN, or the host the page was served from."""
    settings = services.settings
    host = request.url.hostname or "localhost"
    origin = settings.webauthn_origin or f"{request.url.scheme}://{request.url.netloc}"
    return RelyingParty(settings.webauthn_rp_id or host, origin, settings.webauthn_rp_name)


def _passkey_out(passkey: Passkey) -> PasskeyOut:
    return PasskeyOut(
        id=str(passkey.id),
        name=passkey.name,
        created_at=passkey.created_at,
        last_used_at=passkey.last_used_at,
    )


@me_router.post(
    "/passkeys/options",
    summary="Options for adding a passkey (navigator.credentials.create)",
    description="A discoverable credential with user verification; the challenge is single "
    "use, bound to this account, valid 5 minutes.",
    responses=problem_responses(401, 503),
)
async def passkey_registration_options(
    request: Request, user: CurrentUser, services: ServicesDep
) -> dict[str, Any]:
    account = await services.accounts.get(user.account_id)
    return await services.passkeys.registration_options(
        relying_party(request, services), user.account_id, account.email or str(account.id)
    )


@me_router.post(
    "/passkeys",
    summary="Add a passkey",
    status_code=status.HTTP_201_CREATED,
    response_model=PasskeyOut,
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def add_passkey(
    body: PasskeyIn, request: Request, user: CurrentUser, services: ServicesDep
) -> PasskeyOut:
    added = await services.passkeys.add(
        relying_party(request, services), user.account_id, body.name, body.credential
    )
    return _passkey_out(added)


@me_router.get(
    "/passkeys",
    summary="The account's passkeys",
    response_model=PasskeysOut,
    responses=problem_responses(401, 503),
)
async def list_passkeys(user: CurrentUser, services: ServicesDep) -> PasskeysOut:
    return PasskeysOut(
        passkeys=[_passkey_out(p) for p in await services.passkeys.list(user.account_id)]
    )


@me_router.delete(
    "/passkeys/{passkey_id:uuid}",
    summary="Remove a passkey",
    responses=problem_responses(401, 404, 422, 503),
    **NO_CONTENT,
)
async def remove_passkey(passkey_id: UUID, user: CurrentUser, services: ServicesDep) -> None:
    await services.passkeys.remove(user.account_id, passkey_id)


@auth_router.post(
    "/passkey/options",
    summary="Options for signing in with a passkey (navigator.credentials.get)",
    description="For a discoverable credential: no email is asked.",
    responses=problem_responses(429, 503),
)
async def passkey_sign_in_options(
    request: Request, services: ServicesDep, address: ClientAddress
) -> dict[str, Any]:
    await services.limits.anonymous(address=address)  # each call stores a challenge
    return await services.passkeys.sign_in_options(relying_party(request, services))


@auth_router.post(
    "/passkey",
    summary="Sign in with a passkey",
    description=(
        "A complete sign-in (the passkey's user verification is the second factor): the "
        "session satisfies OIDC_REQUIRE_MFA. 401 `invalid_credentials` otherwise."
    ),
    response_model=TokenOut,
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def sign_in_with_passkey(
    body: PasskeySignInIn, request: Request, services: ServicesDep
) -> TokenOut:
    token = await services.passkeys.sign_in(relying_party(request, services), body.credential)
    return TokenOut(access_token=token, expires_in=services.sessions.ttl_seconds)
