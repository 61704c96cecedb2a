from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.deps import CurrentUser, ServicesDep
from api.problems import problem_responses
from schemas.mfa import CodeIn, MfaStatusOut, RecoveryCodesOut, TotpEnrollmentOut

router = APIRouter(prefix="/v1/me/mfa", tags=["mfa"])


@router.get(
    "",
    summary="Whether two-factor sign-in is on, and how many recovery codes are left",
    response_model=MfaStatusOut,
    responses=problem_responses(401, 503),
)
async def get_mfa_status(user: CurrentUser, services: ServicesDep) -> MfaStatusOut:
    state = await services.mfa.status(user.account_id)
    return MfaStatusOut(
        enabled=state.enabled,
        enrollment_pending=state.enrollment_pending,
        recovery_codes_left=state.recovery_codes_left,
    )


@router.post(
    "/totp",
    summary="Start enrolling an authenticator app (2FA stays off until confirmed)",
    description=(
        "Returns a new TOTP secret as text, as an `otpauth://` URI and as a QR code (SVG). "
        "A later call replaces an unconfirmed secret. 409 `mfa_already_enabled` while 2FA is on."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=TotpEnrollmentOut,
    responses=problem_responses(401, 409, 503),
)
async def start_totp_enrollment(user: CurrentUser, services: ServicesDep) -> TotpEnrollmentOut:
    enrollment = await services.mfa.start_enrollment(user.account_id)
    return TotpEnrollmentOut(
        secret=enrollment.secret, otpauth_uri=enrollment.otpauth_uri, qr_svg=enrollment.qr_svg
    )


@router.post(
    "/totp/confirm",
    summary="Confirm enrollment with a code from the app: 2FA is on; recovery codes shown once",
    description=(
        "400 `invalid_code` for a wrong, expired or already used code; 409 "
        "`mfa_enrollment_not_started` or `mfa_already_enabled`. Every other session of the "
        "account ends (it was opened with the password alone)."
    ),
    response_model=RecoveryCodesOut,
    responses=problem_responses(400, 401, 409, 413, 422, 503),
)
async def confirm_totp_enrollment(
    body: CodeIn, user: CurrentUser, services: ServicesDep
) -> RecoveryCodesOut:
    codes = await services.mfa.confirm_enrollment(
        user.account_id, body.code, keep_session=user.token
    )
    return RecoveryCodesOut(recovery_codes=codes)


@router.delete(
    "/totp",
    summary="Turn two-factor sign-in off, with a current code or a recovery code",
    description=(
        "400 `invalid_code` (counts toward the account's wrong-code limit); 409 "
        "`mfa_not_enabled`; 429 `mfa_locked` while the account's limit is reached."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 401, 409, 413, 422, 429, 503),
)
async def disable_totp(body: CodeIn, user: CurrentUser, services: ServicesDep) -> None:
    await services.mfa.disable(user.account_id, body.code)


@router.post(
    "/recovery-codes",
    summary="Replace the recovery codes (proven with a current code or a recovery code)",
    description=(
        "Ten new codes, shown once; every earlier one stops working. 400 `invalid_code` "
        "(counts toward the account's wrong-code limit); 409 `mfa_not_enabled`; 429 "
        "`mfa_locked`."
    ),
    response_model=RecoveryCodesOut,
    responses=problem_responses(400, 401, 409, 413, 422, 429, 503),
)
async def regenerate_recovery_codes(
    body: CodeIn, user: CurrentUser, services: ServicesDep
) -> RecoveryCodesOut:
    codes = await services.mfa.regenerate_recovery_codes(user.account_id, body.code)
    return RecoveryCodesOut(recovery_codes=codes)
