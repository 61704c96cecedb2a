"""Shared pieces of the API schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainSerializer


def _rfc3339_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# RFC 3339 in UTC with a trailing Z, e.g. 2026-11-25T12:00:00.123456Z.
UtcDatetime = Annotated[
    AwareDatetime, PlainSerializer(_rfc3339_utc, return_type=str, when_used="json")
]


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
