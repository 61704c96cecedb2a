from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.common import Problem, StrictModel

# A TOTP code ("123456", spaces allowed) or a recovery code ("abcd-efgh-2345", any case).
_CODE = Field(
    min_length=6,
    max_length=32,
    pattern=r"^[0-9A-Za-z -]+$",
    examples=["492039"],
    description="A current code from the authenticator app, or an unused recovery code.",
)


class TotpEnrollmentOut(BaseModel):
    secret: str = Field(description="Base32 TOTP secret, for typing into an app by hand.")
    otpauth_uri: str = Field(examples=["otpauth://totp/Support%20PIN:ada%40example.com?..."])
    qr_svg: str = Field(description="The otpauth URI as a QR code, a standalone SVG document.")


class CodeIn(StrictModel):
    code: str = _CODE


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(
        description="Ten single-use codes, shown only this once; earlier ones stop working.",
        examples=[["k7qd-m2xa-p4rt", "..."]],
    )


class MfaTokenIn(StrictModel):
    mfa_token: str = Field(min_length=1, max_length=128, examples=["spm_…"])
    code: str = _CODE


class MfaStatusOut(BaseModel):
    enabled: bool
    enrollment_pending: bool = Field(description="Enrollment started but not yet confirmed.")
    recovery_codes_left: int


class MfaRequiredProblem(Problem):
    """401 of sign-in: `invalid_credentials`, or `mfa_required` (the password was right, finish
    at POST /v1/auth/token/mfa) with the two members below."""

    mfa_token: str | None = Field(
        default=None, description="With `mfa_required`: single use, for POST /v1/auth/token/mfa."
    )
    mfa_token_expires_in: int | None = Field(
        default=None, description="With `mfa_required`: seconds the mfa_token stays valid."
    )


class InvalidCodeProblem(Problem):
    """401 `invalid_code` at the second step."""

    attempts_left: int = Field(
        description="Wrong codes this mfa_token still allows; 0 means sign in again."
    )
