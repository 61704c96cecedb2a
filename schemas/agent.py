from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from schemas.common import PrintableStr, StrictModel, UtcDatetime
from schemas.staff import CaseRef

_PIN_DIGITS = re.compile(r"^[0-9]{6,10}$")


def _pin_digits(value: str) -> str:
    # An agent may type spaces between groups; what is checked is the digits alone.
    digits = value.replace(" ", "")
    if not _PIN_DIGITS.match(digits):
        raise ValueError("must be 6 to 10 digits (spaces between them are ignored)")
    return digits


PinField = Annotated[
    str,
    Field(
        min_length=6,
        max_length=20,
        pattern=r"^[0-9 ]+$",
        description="The caller's PIN: 6 to 10 digits; spaces between them are ignored.",
        examples=["042917"],
    ),
    AfterValidator(_pin_digits),
]


class VerificationRequest(StrictModel):
    """The account under discussion by its email."""

    email: PrintableStr = Field(min_length=3, max_length=254, examples=["ada@example.com"])
    pin: PinField
    case_ref: CaseRef | None = None


class SubjectVerificationRequest(StrictModel):
    """The account under discussion by the subject (`sub`) the company's OpenID provider
    gives the customer, for tooling that knows that identifier rather than the email."""

    subject: PrintableStr = Field(
        min_length=1,
        max_length=255,
        description="The customer's `sub` at the company's OpenID provider (OIDC_ISSUER)",
        examples=["248289761001"],
    )
    pin: PinField
    case_ref: CaseRef | None = None


class VerificationOut(BaseModel):
    valid: bool
    account_id: UUID | None
    verified_at: UtcDatetime | None
    email: str | None = Field(
        description=(
            "The address that was checked, in the one spelling the service stores "
            "(NFKC, IDNA, case-folded), for the agent to read back to the caller; null for "
            "a check by subject."
        ),
        examples=["ada@example.com"],
    )
    subject: str | None = Field(
        default=None, description="The subject that was checked; null for a check by email."
    )
