"""Pre-serialised JSON answers for the hot routes (PIN issuance, agent verification).

FastAPI validates a returned model against `response_model` and serialises it again; for
the two routes on every support call, the route builds the JSON itself with orjson and returns
a `Response`, which FastAPI passes through. `response_model=` stays on the route, so the
OpenAPI document is unchanged, and tests check the bodies against the same models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.responses import Response

from schemas.common import rfc3339_utc


def json_response(content: dict[str, Any], status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code, media_type="application/json")


def utc(value: datetime | None) -> str | None:
    """A timestamp exactly as the schemas' `UtcDatetime` writes it."""
    return None if value is None else rfc3339_utc(value)
