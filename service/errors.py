"""Domain errors. Each carries the HTTP status and stable code that api/ renders as RFC 9457."""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """Base of every error that has a defined answer."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    detail: str = "The request could not be processed."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        if detail is not None:
            self.detail = detail
        self.extra: dict[str, Any] = extra
        super().__init__(self.detail)

    @property
    def headers(self) -> dict[str, str]:
        return {}


class InvalidCredentials(ServiceError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid credentials"
    detail = "The email or password is not correct."


class Unauthenticated(ServiceError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"
    detail = "A valid bearer token is required."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class InvalidToken(ServiceError):
    """A bearer token from the OpenID provider that is not believed (RFC 6750 §3.1)."""

    status = 401
    code = "invalid_token"
    title = "Invalid token"
    detail = "The access token is not valid for this service."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"
    title = "Forbidden"
    detail = "This credential does not allow this request."


class MfaRequiredByPolicy(ServiceError):
    status = 403
    code = "mfa_required_by_policy"
    title = "Second factor required"
    detail = (
        "A support PIN is only issued after a sign-in with a second factor: sign in again "
        "with two-factor sign-in or a passkey."
    )


class PasswordSigninDisabled(ServiceError):
    status = 403
    code = "password_signin_disabled"
    title = "Password sign-in is off"
    detail = "This service signs people in through the company's identity provider only."


class OidcNotConfigured(ServiceError):
    status = 404
    code = "oidc_not_configured"
    title = "Single sign-on is not configured"
    detail = "No OpenID Connect provider is configured (OIDC_ISSUER)."


class OidcFailed(ServiceError):
    """The sign-in through the provider did not complete; `reason` says at which step."""

    status = 400
    code = "oidc_failed"
    title = "Sign-in through the provider failed"
    detail = "The sign-in through the identity provider did not complete; start it again."

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason)
        self.reason = reason


class WrongPassword(InvalidCredentials):
    """The current password, asked again by a signed-in user, is not right."""

    status = 400
    detail = "The current password is not correct."

    def __init__(self, field: str = "current_password") -> None:
        super().__init__(
            errors=[{"loc": ["body", field], "msg": self.detail, "type": "invalid_credentials"}]
        )


class NoPassword(ServiceError):
    status = 409
    code = "no_password"
    title = "No password"
    detail = "This account signs in through the company's identity provider and has no password."


class RecentSignInRequired(ServiceError):
    status = 403
    code = "recent_sign_in_required"
    title = "Sign in again"
    detail = "Sign in again (within the last 5 minutes) to do this."


class InvalidLink(ServiceError):
    """A link's token (password reset) that is wrong, expired, replaced or used."""

    status = 400
    code = "invalid_token"
    title = "Invalid link"
    detail = "The link is not valid, has expired, was replaced by a newer one or was used."


class EmailTaken(ServiceError):
    status = 409
    code = "email_taken"
    title = "Email already registered"
    detail = "An account with this email already exists."


class NotFound(ServiceError):
    status = 404
    code = "not_found"
    title = "Not found"
    detail = "The resource does not exist."


class AgentExists(ServiceError):
    status = 409
    code = "agent_exists"
    title = "Agent already exists"
    detail = "An agent with this name already exists."


class StaffExists(ServiceError):
    status = 409
    code = "staff_exists"
    title = "Staff member already exists"
    detail = "A staff member with this email already exists."


class LastAdmin(ServiceError):
    status = 409
    code = "last_admin"
    title = "The last admin"
    detail = "This is the last active admin: make another admin first."


class NotStaff(ServiceError):
    status = 403
    code = "not_staff"
    title = "Not support staff"
    detail = "Your account at the company's identity provider has no support role here."


class RetryLater(ServiceError):
    """A refusal that ends by itself: answered with `Retry-After` (whole seconds, at least 1)."""

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(RetryLater):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    detail = "Too many requests; try again later."


class Unavailable(RetryLater):
    """A store (Postgres or Redis) did not answer in time; nothing was half-done."""

    status = 503
    code = "unavailable"
    title = "Service unavailable"
    detail = "The service is temporarily unavailable; try again shortly."

    def __init__(self, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(retry_after, detail)


# Two-factor sign-in.


class MfaRequired(ServiceError):
    """Right password, 2FA on: the answer carries `mfa_token` for POST /v1/auth/token/mfa."""

    status = 401
    code = "mfa_required"
    title = "Second factor required"
    detail = (
        "Two-factor sign-in is on for this account: send `mfa_token` with a code from the "
        "authenticator app (or a recovery code) to POST /v1/auth/token/mfa."
    )


class InvalidCode(ServiceError):
    """A wrong code from a signed-in user (enrollment confirmation, turning 2FA off)."""

    status = 400
    code = "invalid_code"
    title = "Invalid code"
    detail = "The code is not correct, has expired or was already used."


class InvalidSecondFactor(InvalidCode):
    """A wrong code, or a dead `mfa_token`, at the second sign-in step."""

    status = 401


class MfaAlreadyEnabled(ServiceError):
    status = 409
    code = "mfa_already_enabled"
    title = "Two-factor sign-in already on"
    detail = "Two-factor sign-in is already on; turn it off first to enroll a new authenticator."


class MfaNotEnabled(ServiceError):
    status = 409
    code = "mfa_not_enabled"
    title = "Two-factor sign-in is off"
    detail = "Two-factor sign-in is not on for this account."


class MfaEnrollmentNotStarted(ServiceError):
    status = 409
    code = "mfa_enrollment_not_started"
    title = "No enrollment to confirm"
    detail = "Start enrollment with POST /v1/me/mfa/totp first."


class MfaLocked(RetryLater):
    """Too many wrong second-factor codes for the account: refused until the lock expires."""

    status = 429
    code = "mfa_locked"
    title = "Too many wrong codes"
    detail = "Too many wrong codes for this account; two-factor sign-in is refused for a while."


# New passwords (service/password_policy.py).


class PasswordRefused(ServiceError):
    """A new password NIST SP 800-63B-4 §3.1.1.2 says to refuse; `reason` says which rule."""

    status = 422
    code = "password_refused"
    title = "Password refused"
    detail = "This password is too easy to guess; choose a different one."
    # One English sentence per reason of `service.password_policy.PasswordReason`.
    messages: ClassVar[dict[str, str]] = {
        "common": (
            "This password is on a list of commonly used or breached passwords; "
            "choose a different one."
        ),
        "repetitive": (
            "This password is a repeated character or pattern (like 'aaaa' or 'abcabc'); "
            "choose a different one."
        ),
        "sequential": (
            "This password is a run of consecutive characters (like '1234', 'abcd' or "
            "'qwerty'); choose a different one."
        ),
        "contains_email": (
            "This password contains the part of your email address before the '@'; "
            "choose a different one."
        ),
        "contains_service_name": (
            "This password contains the name of this service (Support PIN); choose a different one."
        ),
    }

    def __init__(self, reason: str, field: str = "password") -> None:
        message = self.messages.get(reason, self.detail)
        super().__init__(
            message,
            reason=reason,
            # Shaped like a request validation error (api/problems.py), so clients that show
            # field errors show this one beside the password field.
            errors=[{"loc": ["body", field], "msg": message, "type": f"password_{reason}"}],
        )


# New email addresses (service/emails.py). Both are shaped like a request validation error
# (api/problems.py), so clients that show field errors show them beside the email field.


class EmailInvalid(ServiceError):
    """Not an address the service accepts. The sign-up schema refuses these first (422
    `validation_error`); this is the same refusal for callers that skip the schema."""

    status = 422
    code = "email_invalid"
    title = "Invalid email address"
    detail = "This is not a valid email address."

    def __init__(self, reason: str | None = None) -> None:
        message = f"This is not a valid email address: {reason}." if reason else self.detail
        super().__init__(
            message,
            errors=[{"loc": ["body", "email"], "msg": message, "type": "email_invalid"}],
        )


class EmailConfusable(ServiceError):
    """An address that mixes scripts confusably (UTS #39), like a Cyrillic 'e' among Latin
    letters: it could pass for another address. A look-alike of an existing account's address
    is answered as `EmailTaken` instead, so it reveals no more than a taken address does."""

    status = 422
    code = "email_confusable"
    title = "Look-alike email address"
    detail = (
        "This address mixes letters of different alphabets that look alike (like a Cyrillic "
        "'e' among Latin letters), so it could be mistaken for another address; type it in "
        "one alphabet."
    )

    def __init__(self) -> None:
        super().__init__(
            errors=[{"loc": ["body", "email"], "msg": self.detail, "type": "email_confusable"}],
        )
