from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


# The bounds say what the route accepts: FastAPI treats an empty form value as missing, so
# the generic OAuth2 form's schema allowed "" where the route answered 422 (schemathesis).
class PasswordGrantForm(BaseModel):
    """OAuth2 password grant (RFC 6749 section 4.3): the account's email and password."""

    username: str = Field(min_length=1, max_length=320, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=1024, json_schema_extra={"format": "password"})
    # A form cannot carry null: optional fields have defaults instead of `| None`.
    grant_type: str = Field(default="password", pattern=r"^password$")
    scope: str = Field(default="", max_length=1024)
    client_id: str = Field(default="", max_length=256)
    client_secret: str = Field(default="", max_length=256, json_schema_extra={"format": "password"})


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    expires_in: int


# A path of this service: one leading '/', no scheme or host ('//evil.example' and '/\\evil'
# are other hosts to a browser), printable ASCII only.
NEXT_PATH_PATTERN = r"^/([A-Za-z0-9\-._~!$&'()*+,;=:@%?][A-Za-z0-9\-._~!$&'()*+,;=:@/%?]*)?$"


class OidcMethodOut(BaseModel):
    display_name: str = Field(examples=["Acme ID"])
    login_url: str = Field(examples=["/v1/auth/oidc/login?next=/account"])


class SignInMethodsOut(BaseModel):
    """How people sign in here: what the sign-in page offers."""

    password: bool = Field(description="Email and password (false when PASSWORD_SIGNIN=false)")
    oidc: OidcMethodOut | None = Field(description="The company's provider, when configured")


class SignInCodeIn(BaseModel):
    code: str = Field(min_length=20, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class SignedInOut(TokenOut):
    next: str = Field(description="Where the sign-in was started for", examples=["/account"])
