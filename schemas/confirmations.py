"""Agent-started confirmations and the customer's "who is on the line"."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.common import PrintableStr, StrictModel, UtcDatetime
from schemas.staff import CaseRef


class ConfirmationByEmail(StrictModel):
    email: PrintableStr = Field(min_length=3, max_length=254, examples=["ada@example.com"])
    case_ref: CaseRef | None = None


class ConfirmationBySubject(StrictModel):
    subject: PrintableStr = Field(min_length=1, max_length=255, examples=["248289761001"])
    case_ref: CaseRef | None = None


class ConfirmationCreated(BaseModel):
    id: str
    code: str = Field(
        pattern=r"^[0-9]{2}$",
        description="Two digits to read to the caller, who presses the same on their page",
        examples=["47"],
    )
    expires_at: UtcDatetime


class ConfirmationStateOut(BaseModel):
    status: Literal["pending", "approved", "denied", "expired"]
    decided_at: UtcDatetime | None


class PendingConfirmationOut(BaseModel):
    id: str
    agent: str
    case_ref: str | None
    choices: list[str] = Field(description="Three two-digit numbers; one is the agent's")
    expires_at: UtcDatetime


class PendingConfirmationsOut(BaseModel):
    confirmations: list[PendingConfirmationOut]


class ChoiceIn(StrictModel):
    choice: str = Field(pattern=r"^[0-9]{2}$", examples=["47"])


class AnswerOut(BaseModel):
    status: Literal["approved", "denied"]


class SupportContactOut(BaseModel):
    in_contact: bool
    agent: str | None
    case_ref: str | None
    since: UtcDatetime | None
