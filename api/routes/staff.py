"""Support staff: set-up of built-in staff, their sign-in (always with a second factor), and
single sign-on through the company's workforce provider."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import RedirectResponse

from api.deps import ClientAddress, ServicesDep, SignedInStaff
from api.problems import problem_responses
from api.sso import SignInFlow
from schemas.auth import PasswordGrantForm, SignInCodeIn, TokenOut
from schemas.mfa import InvalidCodeProblem, MfaRequiredProblem, MfaTokenIn, TotpEnrollmentOut
from schemas.staff import (
    StaffMeOut,
    StaffSetupConfirmIn,
    StaffSetupIn,
    StaffSignInMethodsOut,
    StaffSsoOut,
)
from service.accounts import normalize_email
from service.container import Services
from service.errors import (
    InvalidCredentials,
    NotStaff,
    OidcFailed,
    OidcNotConfigured,
    StaffExists,
)
from service.staff import role_from_claims

router = APIRouter(prefix="/v1/staff", tags=["staff"])

# What a one-time sign-in code carries here: a staff member's id.
STAFF_CODE = b"staff"


def _with_401(model: type, description: str, *others: int) -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(*others)
    responses[401] = {"model": model, "description": description}
    return responses


@router.post(
    "/setup",
    summary="Set a built-in staff member's password and start their authenticator set-up",
    description=(
        "With the secret from the set-up link (`support-pin staff add`, or POST "
        "/v1/admin/staff). The password follows the customers' rules. The answer is the "
        "authenticator app's secret; POST /v1/staff/setup/confirm with a code from the app "
        "finishes the set-up and spends the link."
    ),
    response_model=TotpEnrollmentOut,
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def start_staff_setup(body: StaffSetupIn, services: ServicesDep) -> TotpEnrollmentOut:
    enrollment = await services.staff.start_setup(body.token, body.password)
    return TotpEnrollmentOut(
        secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri, qr_svg=enrollment.qr_svg
    )


@router.post(
    "/setup/confirm",
    summary="Finish a staff member's set-up with a code from the authenticator app",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def confirm_staff_setup(body: StaffSetupConfirmIn, services: ServicesDep) -> None:
    await services.staff.confirm_setup(body.token, body.code)


@router.get(
    "/auth/methods",
    summary="How staff sign in here (what the agent console offers)",
    response_model=StaffSignInMethodsOut,
)
async def staff_sign_in_methods(services: ServicesDep) -> StaffSignInMethodsOut:
    settings = services.settings
    sso = None
    if settings.staff_sso_enabled:
        sso = StaffSsoOut(
            display_name=settings.staff_oidc_display_name,
            login_url="/v1/staff/auth/oidc/login",
        )
    return StaffSignInMethodsOut(password=True, sso=sso)


@router.post(
    "/auth/token",
    summary="A built-in staff member's sign-in, first step: email and password",
    description=(
        "A right password always answers 401 `mfa_required` with an `mfa_token`: the second "
        "factor is not optional for staff. Finish at POST /v1/staff/auth/token/mfa. The same "
        "limits, lock and answers for an unknown email as customers' sign-in."
    ),
    responses=_with_401(
        MfaRequiredProblem,
        "`invalid_credentials`; or `mfa_required` with `mfa_token` (the password was right)",
        400,
        413,
        422,
        429,
        503,
    ),
    response_model=None,
    status_code=401,
)
async def create_staff_token(
    form: Annotated[PasswordGrantForm, Form()], services: ServicesDep, address: ClientAddress
) -> None:
    email = normalize_email(form.username)
    # Counted apart from customers' sign-ins to the same address.
    attempt = await services.limits.sign_in(address=address, email=f"staff:{email}", device=None)
    required = await services.staff.check_password(email, form.password)
    await services.limits.signed_in(attempt)
    raise required


@router.post(
    "/auth/token/mfa",
    summary="A built-in staff member's sign-in, second step: a code from the authenticator",
    response_model=TokenOut,
    responses=_with_401(
        InvalidCodeProblem, "`invalid_code`: wrong code or dead mfa_token", 400, 413, 422, 429, 503
    ),
)
async def create_staff_token_with_code(body: MfaTokenIn, services: ServicesDep) -> TokenOut:
    token = await services.staff.sign_in_with_code(body.mfa_token, body.code)
    return TokenOut(access_token=token, expires_in=services.staff.session_ttl_seconds)


@router.post(
    "/auth/logout",
    summary="End this staff session",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 503),
)
async def staff_logout(signed_in: SignedInStaff, services: ServicesDep) -> None:
    await services.staff.end_session(signed_in[1])


@router.get(
    "/me",
    summary="The signed-in staff member and their role",
    response_model=StaffMeOut,
    responses=problem_responses(401, 503),
)
async def staff_me(signed_in: SignedInStaff) -> StaffMeOut:
    staff = signed_in[0]
    return StaffMeOut(
        id=staff.id, email=staff.email, name=staff.name, role=staff.role, source=staff.source
    )


# -- single sign-on -------------------------------------------------------------------------


def _staff_flow(services: Services, request: Request) -> SignInFlow:
    flow: SignInFlow | None = request.state.staff_sign_in
    if flow is None or not services.settings.staff_sso_enabled:
        raise OidcNotConfigured("No workforce OpenID provider is configured (STAFF_OIDC_ISSUER).")
    return flow


@router.get(
    "/auth/oidc/login",
    summary="Start a staff sign-in through the company's workforce provider",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the provider"}, **problem_responses(404, 422, 503)},
)
async def staff_oidc_login(request: Request, services: ServicesDep) -> RedirectResponse:
    flow = _staff_flow(services, request)
    # Staff always land on the console, which finishes the sign-in.
    url = await flow.start(request, str(request.url_for("staff_oidc_callback")), "/agent")
    return RedirectResponse(url, status_code=302, headers={"cache-control": "no-store"})


@router.get(
    "/auth/oidc/callback",
    summary="Where the workforce provider sends a staff member back",
    description=(
        "As the customers' callback; the role is read from the ID token's "
        "STAFF_OIDC_ROLES_CLAIM through STAFF_OIDC_ROLE_MAP at every sign-in (the highest "
        "wins). A person with no mapped group is refused: 403 `not_staff` (a browser lands on "
        "the agent console with a readable message)."
    ),
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the console"}, **problem_responses(400, 403, 404, 503)},
)
async def staff_oidc_callback(request: Request, services: ServicesDep) -> RedirectResponse:
    flow = _staff_flow(services, request)
    settings = services.settings
    browser = "text/html" in request.headers.get("accept", "")
    try:
        finished = await flow.finish(request)
        role = role_from_claims(
            finished.claims, settings.staff_oidc_roles_claim, settings.staff_oidc_role_map
        )
        if role is None:
            # Taken out of every support group: sessions made before end now, not in 8 hours.
            await services.staff.end_sso_sessions(
                finished.identity.issuer, finished.identity.subject
            )
            raise NotStaff()
        identity = finished.identity
        if not identity.email:
            raise OidcFailed("email")  # staff are named by their work address
        email = normalize_email(identity.email)
        name = str(finished.claims.get("name") or email)[:100]
        staff = await services.staff.sign_in_with_sso(
            identity.issuer, identity.subject, email, name, role
        )
    except (OidcFailed, NotStaff, InvalidCredentials, StaffExists) as failure:
        if not browser:
            raise
        reason = failure.reason if isinstance(failure, OidcFailed) else failure.code
        return _to_console(f"sso_error={quote(reason)}")
    code = await services.sign_in_codes.issue(STAFF_CODE, staff.id.bytes, finished.next_path)
    return _to_console(f"sso={code}")


def _to_console(fragment: str) -> RedirectResponse:
    return RedirectResponse(
        f"/agent#{fragment}",
        status_code=302,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


@router.post(
    "/auth/oidc/token",
    summary="Exchange the one-time code of a staff single sign-on for a staff session token",
    response_model=TokenOut,
    responses=problem_responses(400, 401, 404, 413, 422, 503),
)
async def staff_oidc_token(body: SignInCodeIn, request: Request, services: ServicesDep) -> TokenOut:
    _staff_flow(services, request)
    redeemed = await services.sign_in_codes.redeem(STAFF_CODE, body.code)
    token = await services.staff.open_session(UUID(bytes=redeemed.payload))
    return TokenOut(access_token=token, expires_in=services.staff.session_ttl_seconds)
