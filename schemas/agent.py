from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field

from schemas.common import PrintableStr, StrictModel, UtcDatetime


class VerificationRequest(StrictModel):
    email: PrintableStr = Field(min_length=3, max_length=254, examples=["ada@example.com"])
    # Digits only; spaces an agent may type between groups are removed by the route.
    pin: str = Field(min_length=6, max_length=20, pattern=r"^[0-9 ]+$", examples=["042917"])


class VerificationOut(BaseModel):
    valid: bool
    account_id: UUID | None
    verified_at: UtcDatetime | None
