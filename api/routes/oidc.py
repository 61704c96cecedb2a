"""Sign-in through the company's OpenID Connect provider (authorization code flow, PKCE)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from api.deps import ServicesDep
from api.problems import problem_responses
from api.sso import SignInFlow
from schemas.auth import (
    NEXT_PATH_PATTERN,
    OidcMethodOut,
    SignedInOut,
    SignInCodeIn,
    SignInMethodsOut,
)
from service.container import Services
from service.errors import OidcFailed, OidcNotConfigured
from service.oidc import CustomerProvider
from service.sessions import MFA_MARK

# What a one-time sign-in code carries: a customer's account (this) or a staff member.
CUSTOMER_CODE = b"customer"

router = APIRouter(prefix="/v1/auth", tags=["auth"])

NextPath = Annotated[
    str,
    Query(
        max_length=512,
        pattern=NEXT_PATH_PATTERN,
        description="A path of this service to land on once signed in",
    ),
]


def _provider(services: Services, request: Request) -> tuple[CustomerProvider, SignInFlow]:
    flow: SignInFlow | None = request.state.customer_sign_in
    if services.oidc is None or flow is None:
        raise OidcNotConfigured()
    return services.oidc, flow


@router.get(
    "/methods",
    summary="How people sign in here (what the sign-in page offers)",
    response_model=SignInMethodsOut,
)
async def sign_in_methods(services: ServicesDep) -> SignInMethodsOut:
    settings = services.settings
    oidc = None
    if settings.oidc_enabled:
        oidc = OidcMethodOut(
            display_name=settings.oidc_display_name,
            login_url="/v1/auth/oidc/login?next=/account",
        )
    return SignInMethodsOut(password=settings.password_signin, oidc=oidc)


@router.get(
    "/oidc/login",
    summary="Start a sign-in through the company's OpenID provider",
    description=(
        "A 302 to the provider's authorization endpoint (authorization code flow with PKCE "
        "S256, `state` and `nonce`). The flow is bound to this browser by a cookie; the "
        "provider sends the person back to /v1/auth/oidc/callback."
    ),
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the provider"}, **problem_responses(404, 422, 503)},
)
async def oidc_login(
    request: Request, services: ServicesDep, next: NextPath = "/account"
) -> RedirectResponse:
    _, flow = _provider(services, request)
    url = await flow.start(request, str(request.url_for("oidc_callback")), next)
    return RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})


@router.get(
    "/oidc/callback",
    summary="Where the provider sends the person back",
    description=(
        "Checks `state` (single use, bound to the browser that started), exchanges the code, "
        "checks the ID token, finds or makes the account linked to the provider's `iss` and "
        "`sub`, and sends a browser to the sign-in page with a one-time code in the URL's "
        "fragment (never the session token), which the page exchanges at "
        "POST /v1/auth/oidc/token. A failure sends a browser to the sign-in page with a "
        "readable message; other clients get 400 `oidc_failed`."
    ),
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the sign-in page"}, **problem_responses(400, 404, 503)},
)
async def oidc_callback(request: Request, services: ServicesDep) -> RedirectResponse:
    provider, flow = _provider(services, request)
    browser = "text/html" in request.headers.get("accept", "")
    try:
        finished = await flow.finish(request)
    except OidcFailed as failure:
        if not browser:
            raise
        return _to_sign_in_page(f"sso_error={quote(failure.reason)}")
    identity = finished.identity
    account_id = await provider.accounts.account_for(identity)
    proof = account_id.bytes + (MFA_MARK if identity.mfa else b"-")
    code = await services.sign_in_codes.issue(CUSTOMER_CODE, proof, finished.next_path)
    return _to_sign_in_page(f"sso={code}")


def _to_sign_in_page(fragment: str) -> RedirectResponse:
    # The fragment never reaches a server or its logs, and no-referrer keeps it in the page.
    return RedirectResponse(
        f"/#{fragment}",
        status_code=302,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


@router.post(
    "/oidc/token",
    summary="Exchange the one-time code of a provider sign-in for a session token",
    description="The code is single use and lives 60 seconds; 400 `oidc_failed` otherwise.",
    response_model=SignedInOut,
    responses=problem_responses(400, 404, 413, 422, 503),
)
async def oidc_token(body: SignInCodeIn, request: Request, services: ServicesDep) -> SignedInOut:
    _provider(services, request)
    redeemed = await services.sign_in_codes.redeem(CUSTOMER_CODE, body.code)
    account_id = UUID(bytes=redeemed.payload[:16])
    await services.accounts.remember_language(account_id, request.headers.get("accept-language"))
    token = await services.sessions.create(account_id, mfa=redeemed.payload[16:] == MFA_MARK)
    return SignedInOut(
        access_token=token, expires_in=services.sessions.ttl_seconds, next=redeemed.next_path
    )
