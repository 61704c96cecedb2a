"""Shared pieces of the API schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, PlainSerializer

from service.accounts import storable_text


def rfc3339_utc(value: datetime) -> str:
    if value.tzinfo is not UTC:  # Postgres's and the service's own times are in UTC already
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


# RFC 3339 in UTC with a trailing Z, e.g. 2026-11-25T12:00:00.123456Z.
UtcDatetime = Annotated[
    AwareDatetime, PlainSerializer(rfc3339_utc, return_type=str, when_used="json")
]


def _printable(value: str) -> str:
    # Control characters and lone surrogates cannot be stored or hashed; refuse them up front.
    if not value.isprintable():
        raise ValueError("must not contain control characters or unpaired surrogates")
    return value


def _no_nul_or_surrogate(value: str) -> str:
    if not storable_text(value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


PrintableStr = Annotated[str, AfterValidator(_printable)]
# Passwords may hold any character a keyboard or password manager can produce.
PasswordStr = Annotated[str, AfterValidator(_no_nul_or_surrogate)]


class StrictModel(BaseModel):
    """Requests: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
