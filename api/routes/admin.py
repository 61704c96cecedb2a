"""Administration: staff, API keys, locks (role `admin`) and the audit search (`supervisor`)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel

from api.deps import Admin, ServicesDep, Supervisor
from api.problems import problem_responses
from schemas.common import UtcDatetime, rfc3339_utc
from schemas.staff import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeysOut,
    AuditEventOut,
    AuditPageOut,
    StaffCreate,
    StaffCreated,
    StaffListOut,
    StaffOut,
    StaffPatch,
    UnlockIn,
)
from service.accounts import normalize_email
from service.agents import AgentRecord
from service.errors import ServiceError
from service.persistence.audit import AuditQuery
from service.staff import setup_url

router = APIRouter(prefix="/v1/admin", tags=["admin"])

ADMIN = "Role: **admin**."
SUPERVISOR = "Role: **supervisor** or **admin**."
AUDIT_PAGE_MAX = 500
CSV_COLUMNS = (
    "id",
    "at",
    "type",
    "account_email",
    "actor",
    "case_ref",
    "reason",
    "request_id",
    "target",
)


class InvalidCursor(ServiceError):
    status = 400
    code = "invalid_cursor"
    title = "Invalid cursor"
    detail = "The cursor is not one this service gave out."


# -- staff --------------------------------------------------------------------------------


@router.get(
    "/staff",
    summary="Every staff member",
    description=ADMIN,
    response_model=StaffListOut,
    responses=problem_responses(401, 403, 503),
)
async def list_staff(admin: Admin, services: ServicesDep) -> StaffListOut:
    return StaffListOut(staff=[StaffOut.of(staff) for staff in await services.staff.list()])


@router.post(
    "/staff",
    summary="Add a built-in staff member; the answer has their set-up link",
    description=f"{ADMIN} 409 `staff_exists` when the address has a staff member already.",
    status_code=status.HTTP_201_CREATED,
    response_model=StaffCreated,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
)
async def add_staff(body: StaffCreate, admin: Admin, services: ServicesDep) -> StaffCreated:
    added = await services.staff.add(body.email, body.name, body.role, actor=admin.email)
    return StaffCreated(
        id=added.staff.id, setup_url=setup_url(services.settings.public_url, added.setup_token)
    )


@router.patch(
    "/staff/{staff_id}",
    summary="Change a staff member's role, or disable or enable them",
    description=(
        f"{ADMIN} The person's sessions end at once. 409 `last_admin` for demoting or "
        "disabling the last active admin."
    ),
    response_model=StaffOut,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def update_staff(
    staff_id: UUID, body: StaffPatch, admin: Admin, services: ServicesDep
) -> StaffOut:
    updated = await services.staff.update(
        staff_id, role=body.role, disabled=body.disabled, actor=admin.email
    )
    return StaffOut.of(updated)


@router.post(
    "/staff/{staff_id}/setup-link",
    summary="A new set-up link for a built-in staff member (lost authenticator or password)",
    description=(
        f"{ADMIN} The person's password and authenticator stop working and their sessions end "
        "at once; the link (single use, 24 hours) lets them set both up again. 404 for staff "
        "who sign in through single sign-on."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=StaffCreated,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def reissue_staff_setup(staff_id: UUID, admin: Admin, services: ServicesDep) -> StaffCreated:
    again = await services.staff.reissue_setup(staff_id, actor=admin.email)
    return StaffCreated(
        id=again.staff.id, setup_url=setup_url(services.settings.public_url, again.setup_token)
    )


# -- API keys -----------------------------------------------------------------------------


def _key_out(record: AgentRecord) -> ApiKeyOut:
    return ApiKeyOut(
        id=record.id,
        name=record.name,
        created_at=record.created_at,
        expires_at=record.expires_at,
        last_used_at=record.last_used_at,
        revoked=record.revoked_at is not None,
    )


@router.get(
    "/api-keys",
    summary="Every API key (never the key itself)",
    description=ADMIN,
    response_model=ApiKeysOut,
    responses=problem_responses(401, 403, 503),
)
async def list_api_keys(admin: Admin, services: ServicesDep) -> ApiKeysOut:
    return ApiKeysOut(api_keys=[_key_out(record) for record in await services.agents.list()])


@router.post(
    "/api-keys",
    summary="Create an API key for agent tooling; the key is shown only in this answer",
    description=(
        f"{ADMIN} 409 `agent_exists` while a key that is not revoked has the name; a revoked "
        "key's name can be used again."
    ),
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
)
async def create_api_key(body: ApiKeyCreate, admin: Admin, services: ServicesDep) -> ApiKeyCreated:
    record, key = await services.agents.create(
        body.name, expires_in_days=body.expires_in_days, actor=admin.email
    )
    return ApiKeyCreated(id=record.id, name=record.name, key=key, expires_at=record.expires_at)


@router.delete(
    "/api-keys/{key_id}",
    summary="Revoke an API key",
    description=f"{ADMIN} When this answers, every instance refuses the key.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def revoke_api_key(key_id: UUID, admin: Admin, services: ServicesDep) -> None:
    await services.agents.revoke_by_id(key_id, actor=admin.email)


# -- locks --------------------------------------------------------------------------------


@router.post(
    "/accounts/unlock",
    summary="Clear an account's PIN lock and failure counts",
    description=(
        f"{ADMIN} 204 whether or not an account has the address (the action is audited either way)."
    ),
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 401, 403, 413, 422, 503),
)
async def unlock_account(body: UnlockIn, admin: Admin, services: ServicesDep) -> None:
    await services.verifications.unlock(body.email, actor=admin.email)


# -- the audit log ------------------------------------------------------------------------


def _cursor_of(event_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{event_id}".encode()).decode().rstrip("=")


def _id_of(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, _, number = text.partition(":")
        if version != "v1" or not number.isdigit() or len(number) > 19:
            raise ValueError(cursor)
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None


# Printable text only: the filters go to PostgreSQL, which refuses NUL.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
AuditFilter = Annotated[str | None, Query(min_length=1, max_length=254, pattern=_PRINTABLE)]


@router.get(
    "/audit",
    summary="Search the audit log, newest first",
    description=(
        f"{SUPERVISOR} Every filter is exact; `since` is inclusive, `until` exclusive. Pages "
        "go on with `cursor` (the previous page's `next_cursor`, null on the last page). With "
        "`Accept: text/csv` the answer is every matching row as CSV with a header line, all "
        "pages of it."
    ),
    response_model=AuditPageOut,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(400, 401, 403, 422, 503),
    },
)
async def search_audit(
    request: Request,
    supervisor: Supervisor,
    services: ServicesDep,
    email: AuditFilter = None,
    actor: AuditFilter = None,
    type: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_PRINTABLE)] = None,
    case_ref: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_PRINTABLE)] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE_MAX)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditPageOut | StreamingResponse:
    query = AuditQuery(
        email=_normalized(email),
        actor=actor,
        type=type,
        case_ref=case_ref,
        since=since,
        until=until,
        before_id=_id_of(cursor) if cursor else None,
    )
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            _csv_rows(services, query),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="audit.csv"'},
        )
    rows = await services.audit.search(query, limit + 1)
    events = [_event_out(row) for row in rows[:limit]]
    next_cursor = _cursor_of(events[-1].id) if len(rows) > limit else None
    return AuditPageOut(events=events, next_cursor=next_cursor)


def _normalized(email: str | None) -> str | None:
    return normalize_email(email) if email else None


def _event_out(row: asyncpg.Record) -> AuditEventOut:
    return AuditEventOut.model_validate(
        {"id": row["id"], "at": row["occurred_at"], **{name: row[name] for name in CSV_COLUMNS[2:]}}
    )


async def _csv_rows(services: ServicesDep, query: AuditQuery) -> AsyncIterator[str]:
    """Every matching row, a page at a time, as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    while True:
        rows = await services.audit.search(query, AUDIT_PAGE_MAX)
        for row in rows:
            event = _event_out(row)
            writer.writerow(
                [event.id, rfc3339_utc(event.at)]
                + [_cell(getattr(event, name)) for name in CSV_COLUMNS[2:]]
            )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < AUDIT_PAGE_MAX:
            return
        query = replace(query, before_id=rows[-1]["id"])


def _cell(value: str | None) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab or carriage
    return) gets a leading apostrophe (OWASP's CSV injection advice)."""
    if value is None:
        return ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# -- notices ------------------------------------------------------------------------------


class NoticeOut(BaseModel):
    id: UUID
    channel: Literal["email", "webhook"]
    type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    account_email: str | None
    created_at: UtcDatetime
    next_attempt_at: UtcDatetime
    delivered_at: UtcDatetime | None
    last_error: str | None


class NoticesOut(BaseModel):
    notices: list[NoticeOut]


@router.get(
    "/notices",
    summary="Notices by email and webhook, and how their delivery stands",
    description=ADMIN,
    response_model=NoticesOut,
    responses=problem_responses(401, 403, 422, 503),
)
async def list_notices(
    admin: Admin,
    services: ServicesDep,
    status: Literal["pending", "failed", "delivered"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> NoticesOut:
    rows = await services.notices.listing(status, limit)
    return NoticesOut(notices=[NoticeOut.model_validate(dict(row)) for row in rows])


@router.post(
    "/notices/{notice_id}/retry",
    summary="Deliver a failed notice again",
    description=f"{ADMIN} The notice gets another 24 hours of tries. 404 unless it failed.",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def retry_notice(notice_id: UUID, admin: Admin, services: ServicesDep) -> None:
    await services.notices.retry(notice_id, actor=admin.email)
