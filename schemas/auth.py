from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


# The bounds say what the route accepts: FastAPI treats an empty form value as missing, so
# the generic OAuth2 form's schema allowed "" where the route answered 422 (schemathesis).
class PasswordGrantForm(BaseModel):
    """OAuth2 password grant (RFC 6749 section 4.3): the account's email and password."""

    username: str = Field(min_length=1, max_length=320, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=1024, json_schema_extra={"format": "password"})
    grant_type: str | None = Field(default=None, pattern=r"^password$")
    scope: str = ""
    client_id: str | None = None
    client_secret: str | None = Field(default=None, json_schema_extra={"format": "password"})


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    expires_in: int
