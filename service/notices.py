"""Notices outside the page: an email to the account holder and a signed webhook to the
company, for every check and every change an account holder must hear of.

The outbox rows are written by the audit log in the same statement as their events. A worker
in every instance claims due rows (`FOR UPDATE SKIP LOCKED`, then a lease), delivers them,
and retries failures with exponential backoff for 24 hours. Each notice has a stable id (the
webhook's `webhook-id`, the email's Message-ID), so a receiver can drop a duplicate: delivery
is at least once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import random
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit
from uuid import UUID

import aiosmtplib
import httpx2
import orjson
from standardwebhooks import Webhook

from service.errors import NotFound
from service.keys import keyed_digest
from service.persistence import notices as sql
from service.persistence.audit import NoticeRule
from service.persistence.db import Database

if TYPE_CHECKING:
    from service.self_service import ResetLinks

log = logging.getLogger(__name__)

# Event type → webhook type. The same events are emailed to the account holder.
WEBHOOK_TYPES = {
    "verified": "pin.verified",
    "confirmation_approved": "pin.confirmation_approved",
    "confirmation_denied": "pin.confirmation_denied",
    "locked": "account.locked",
    "reported": "account.reported",
}
# Every change an account holder must hear of is emailed; these too, for the email's link.
EMAIL_TYPES = (
    *WEBHOOK_TYPES,
    "password_changed",
    "password_reset",
    "password_reset_requested",
    "mfa_enabled",
    "mfa_disabled",
    "passkey_added",
    "passkey_removed",
    "account_deleted",
)
LEASE_SECONDS = 60
BATCH = 100
POLL_SECONDS = 1.0
SEND_TIMEOUT_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 3600.0
REPORT_LINK_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Notice:
    id: UUID
    event_id: UUID
    channel: str
    attempts: int
    give_up_at: datetime
    type: str
    at: datetime
    agent: str | None
    case_ref: str | None
    reason: str | None
    account_id: UUID | None
    email: str | None
    language: str
    voided: bool


class ReportLinks:
    """ "This wasn't me" links: the account, an expiry and a MAC; single use is enforced
    where the link is used. Never stored, never logged."""

    PREFIX = "rpt_"
    _LAYOUT = struct.Struct(">16sQ16s")  # account id, expiry (unix s), notice id

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._public_url = public_url

    def token(self, account_id: UUID, notice_id: UUID, now: float | None = None) -> str:
        expires = int((now or time.time()) + REPORT_LINK_SECONDS)
        body = self._LAYOUT.pack(account_id.bytes, expires, notice_id.bytes)
        mac = hmac.new(self._key, body, "sha256").digest()[:16]
        return self.PREFIX + base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def link(self, account_id: UUID, notice_id: UUID) -> str:
        # The secret is in the fragment: browsers never send it, so no server logs it.
        return f"{self._public_url}/report#token={self.token(account_id, notice_id)}"

    def check(self, token: str) -> tuple[UUID, bytes] | None:
        """The account and a digest naming this link (for single use), or None."""
        if not token.startswith(self.PREFIX) or len(token) > 100:
            return None
        raw = token[len(self.PREFIX) :]
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except ValueError:
            return None
        if len(data) != self._LAYOUT.size + 16:
            return None
        body, mac = data[: self._LAYOUT.size], data[self._LAYOUT.size :]
        if not hmac.compare_digest(hmac.new(self._key, body, "sha256").digest()[:16], mac):
            return None
        account, expires, _ = self._LAYOUT.unpack(body)
        if expires < time.time():
            return None
        return UUID(bytes=account), keyed_digest(self._key, "used", token)


# -- what an email says -------------------------------------------------------------------

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "verified.subject": "Support checked your support PIN",
        "verified.body": "{agent} from Support checked the support PIN of your account{case} "
        "at {time}.",
        "confirmation_approved.subject": "You confirmed a call with Support",
        "confirmation_approved.body": "You confirmed that you were on a call with {agent} from "
        "Support{case} at {time}.",
        "confirmation_denied.subject": "A confirmation for Support was refused",
        "confirmation_denied.body": "A request from {agent} from Support to confirm that it was "
        "you{case} was refused at {time}.",
        "locked.subject": "Support access to your account is locked",
        "locked.body": "After too many wrong support PINs, Support can no longer check your "
        "account for a while (since {time}).",
        "reported.subject": "You reported a call or a check as not yours",
        "reported.body": "You reported at {time} that a call or a check by Support was not yours. "
        "Support access to your account is locked for 24 hours.",
        "case": " (case {case})",
        "not_me": "This wasn't me",
        "not_me.text": "If this wasn't you, lock support access to your account here "
        "(the link works once, for 24 hours): {link}",
        "rule": "Only read your support PIN to Support on a call that you made.",
        "password_changed.subject": "Your password was changed",
        "password_changed.body": "The password of your account was changed at {time}. Every "
        "other signed-in session was ended.",
        "password_reset.subject": "Your password was reset",
        "password_reset.body": "The password of your account was reset at {time}. Every session "
        "was ended and your support PIN was cancelled.",
        "password_reset_requested.subject": "Reset your password",
        "password_reset_requested.body": "Someone asked at {time} to reset the password of your "
        "account. If it was you, set a new password with the link below; it works once, for 30 "
        "minutes. If it was not you, ignore this email.",
        "mfa_enabled.subject": "Two-factor sign-in was turned on",
        "mfa_enabled.body": "Two-factor sign-in was turned on for your account at {time}.",
        "mfa_disabled.subject": "Two-factor sign-in was turned off",
        "mfa_disabled.body": "Two-factor sign-in was turned off for your account at {time}.",
        "passkey_added.subject": "A passkey was added",
        "passkey_added.body": "A passkey was added to your account at {time}.",
        "passkey_removed.subject": "A passkey was removed",
        "passkey_removed.body": "A passkey was removed from your account at {time}.",
        "account_deleted.subject": "Your account was deleted",
        "account_deleted.body": "Your account was deleted at {time}. This is the last email "
        "we send to this address about it.",
        "reset": "Set a new password",
        "reset.text": "Set a new password here (the link works once, for 30 minutes): {link}",
    },
    "sv": {
        "verified.subject": "Supporten kontrollerade din support-PIN",
        "verified.body": "{agent} från supporten kontrollerade support-PIN för ditt konto{case} "
        "{time}.",
        "confirmation_approved.subject": "Du bekräftade ett samtal med supporten",
        "confirmation_approved.body": "Du bekräftade {time} att du talade med {agent} från "
        "supporten{case}.",
        "confirmation_denied.subject": "En bekräftelse till supporten nekades",
        "confirmation_denied.body": "En begäran från {agent} på supporten om att bekräfta att "
        "det var du{case} nekades {time}.",
        "locked.subject": "Supportens åtkomst till ditt konto är låst",
        "locked.body": "Efter för många felaktiga support-PIN kan supporten inte kontrollera ditt "
        "konto på ett tag (sedan {time}).",
        "reported.subject": "Du rapporterade ett samtal eller en kontroll som inte var din",
        "reported.body": "Du rapporterade {time} att ett samtal eller en kontroll från supporten "
        "inte var din. Supportens åtkomst till ditt konto är låst i 24 timmar.",
        "case": " (ärende {case})",
        "not_me": "Det var inte jag",
        "not_me.text": "Om det inte var du kan du låsa supportens åtkomst till ditt konto här "
        "(länken fungerar en gång, i 24 timmar): {link}",
        "rule": "Läs bara upp din support-PIN för supporten i ett samtal som du själv ringt.",
        "password_changed.subject": "Ditt lösenord har ändrats",
        "password_changed.body": "Lösenordet för ditt konto ändrades {time}. Alla andra "
        "inloggningar avslutades.",
        "password_reset.subject": "Ditt lösenord har återställts",
        "password_reset.body": "Lösenordet för ditt konto återställdes {time}. Alla inloggningar "
        "avslutades och din support-PIN togs bort.",
        "password_reset_requested.subject": "Återställ ditt lösenord",
        "password_reset_requested.body": "Någon bad {time} om att få återställa lösenordet för "
        "ditt konto. Om det var du kan du välja ett nytt lösenord med länken nedan; den fungerar "
        "en gång, i 30 minuter. Om det inte var du kan du strunta i det här mejlet.",
        "mfa_enabled.subject": "Tvåstegsinloggning har slagits på",
        "mfa_enabled.body": "Tvåstegsinloggning slogs på för ditt konto {time}.",
        "mfa_disabled.subject": "Tvåstegsinloggning har stängts av",
        "mfa_disabled.body": "Tvåstegsinloggning stängdes av för ditt konto {time}.",
        "passkey_added.subject": "En nyckel har lagts till",
        "passkey_added.body": "En nyckel (passkey) lades till på ditt konto {time}.",
        "passkey_removed.subject": "En nyckel har tagits bort",
        "passkey_removed.body": "En nyckel (passkey) togs bort från ditt konto {time}.",
        "account_deleted.subject": "Ditt konto har raderats",
        "account_deleted.body": "Ditt konto raderades {time}. Det här är det sista mejlet vi "
        "skickar till den här adressen om det.",
        "reset": "Välj ett nytt lösenord",
        "reset.text": "Välj ett nytt lösenord här (länken fungerar en gång, i 30 minuter): {link}",
    },
}


def email_for(
    notice: Notice, sender: str, link: str | None, link_kind: str = "not_me"
) -> EmailMessage:
    """The notice as an email: a plain and an HTML part in the account's language, with a
    link ("This wasn't me", or a password reset's) when there is one."""
    text = _TEXT.get(notice.language, _TEXT["en"])
    when = notice.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    case = text["case"].format(case=notice.case_ref) if notice.case_ref else ""
    body = text[f"{notice.type}.body"].format(agent=notice.agent or "Support", case=case, time=when)
    message = EmailMessage()
    message["Subject"] = text[f"{notice.type}.subject"]
    message["From"] = sender
    message["To"] = notice.email or ""
    message["Message-ID"] = make_msgid(idstring=str(notice.id), domain="support-pin")
    message["X-Notice-ID"] = str(notice.id)
    plain = [body, "", text["rule"]]
    html = [f"<p>{escape(body)}</p>", f"<p>{escape(text['rule'])}</p>"]
    if link is not None:
        plain += ["", text[f"{link_kind}.text"].format(link=link)]
        html.append(f'<p><a href="{escape(link)}">{escape(text[link_kind])}</a></p>')
    message.set_content("\n".join(plain) + "\n")
    message.add_alternative(
        f'<!doctype html><html lang="{notice.language}"><body>{"".join(html)}</body></html>',
        subtype="html",
    )
    return message


def webhook_body(notice: Notice) -> dict[str, Any]:
    """The Standard Webhooks payload: no PIN, code or secret is in any event."""
    return {
        "type": WEBHOOK_TYPES[notice.type],
        "id": str(notice.id),
        "at": notice.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "account_id": str(notice.account_id) if notice.account_id else None,
            "email": notice.email,
            "agent": notice.agent,
            "case_ref": notice.case_ref,
            "reason": notice.reason,
        },
    }


class NoticeWorker:
    """Delivers due notices; one per instance, any number of instances."""

    def __init__(
        self,
        db: Database,
        links: ReportLinks,
        reset_links: ResetLinks,
        *,
        smtp_url: str | None,
        mail_from: str,
        webhook_url: str | None,
        webhook_secret: str | None,
        http: httpx2.AsyncClient,
    ) -> None:
        self._db = db
        self._links = links
        self._reset_links = reset_links
        self._smtp_url = smtp_url
        self._mail_from = mail_from
        self._webhook_url = webhook_url
        self._webhook = Webhook(webhook_secret) if webhook_secret else None
        self._http = http
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def rule(self) -> NoticeRule:
        """Email always (written to the log when no SMTP server is set); webhooks when set."""
        pairs = [("email", event_type) for event_type in EMAIL_TYPES]
        if self._webhook_url:
            pairs += [("webhook", event_type) for event_type in WEBHOOK_TYPES]
        return NoticeRule(tuple(pairs))

    def wake(self) -> None:
        """Notices were just written: look now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="notice-worker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def listing(self, status: str | None, limit: int) -> list[Any]:
        async with self._db.connection() as conn:
            return await sql.listing(conn, status, limit)

    async def retry(self, notice_id: UUID, *, actor: str) -> None:
        async with self._db.connection() as conn:
            if not await sql.retry(conn, notice_id):
                raise NotFound("No failed notice with this id.")
        log.info("notice %s retried by %s", notice_id, actor)
        self.wake()

    async def _run(self) -> None:
        while True:
            try:
                delivered_any = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store away: try again at the next poll
                log.warning("notice delivery round failed: %s", type(exc).__name__)
                delivered_any = False
            if not delivered_any:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)

    async def deliver_due(self) -> bool:
        """Claim and deliver one batch; whether there was any."""
        async with self._db.connection() as conn:
            # An instance without webhooks configured leaves webhook notices to one that has.
            channels = sorted({channel for channel, _ in self.rule.pairs})
            rows = await sql.claim(conn, BATCH, LEASE_SECONDS, channels)
        if not rows:
            return False
        await asyncio.gather(*(self._deliver(_notice(row)) for row in rows))
        return True

    async def _deliver(self, notice: Notice) -> None:
        try:
            if notice.voided:
                pass  # its event was answered with an error: it never happened
            elif notice.channel == "email":
                await self._send_email(notice)
            else:
                await self._send_webhook(notice)
        except Exception as exc:
            await self._failed(notice, _describe(exc))
            return
        async with self._db.connection() as conn:
            await sql.delivered(conn, notice.id)

    async def _failed(self, notice: Notice, error: str) -> None:
        backoff = min(2.0 ** (notice.attempts - 1), MAX_BACKOFF_SECONDS)
        retry_in = backoff * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)
        give_up = datetime.now(UTC).timestamp() + retry_in > notice.give_up_at.timestamp()
        log.warning(
            "notice %s by %s failed (attempt %d): %s",
            notice.id,
            notice.channel,
            notice.attempts,
            error,
        )
        async with self._db.connection() as conn:
            await sql.failed_attempt(conn, notice.id, error, retry_in, give_up)

    async def _send_email(self, notice: Notice) -> None:
        if not notice.email:
            return  # an account with no address: nothing to send, nothing to retry
        link, kind = self._link_of(notice)
        message = email_for(notice, self._mail_from, link, kind)
        if self._smtp_url is None:
            # The embedded default: the message goes to the log, its link redacted.
            redacted = email_for(notice, self._mail_from, "[link redacted]" if link else None, kind)
            log.info(
                "email (no SMTP_URL set) to %s: %s\n%s",
                notice.email,
                redacted["Subject"],
                redacted.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
            )
            return
        target = urlsplit(self._smtp_url)
        await aiosmtplib.send(
            message,
            hostname=target.hostname,
            port=target.port or (465 if target.scheme == "smtps" else 25),
            username=unquote(target.username) if target.username else None,
            password=unquote(target.password) if target.password else None,
            use_tls=target.scheme == "smtps",
            start_tls=None if target.scheme == "smtp" else False,
            timeout=SEND_TIMEOUT_SECONDS,
        )

    def _link_of(self, notice: Notice) -> tuple[str | None, str]:
        """A password reset's link for its request; "This wasn't me" for the others."""
        if notice.account_id is None or notice.type == "account_deleted":
            return None, "not_me"
        if notice.type == "password_reset_requested":
            issued = notice.at.timestamp()
            return self._reset_links.link(notice.account_id, notice.event_id, issued), "reset"
        return self._links.link(notice.account_id, notice.id), "not_me"

    async def _send_webhook(self, notice: Notice) -> None:
        if self._webhook is None or self._webhook_url is None:
            return
        body = orjson.dumps(webhook_body(notice)).decode()
        now = datetime.now(UTC)
        signature = self._webhook.sign(str(notice.id), now, body)
        response = await self._http.post(
            self._webhook_url,
            content=body,
            headers={
                "content-type": "application/json",
                "webhook-id": str(notice.id),
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            },
            timeout=SEND_TIMEOUT_SECONDS,
        )
        if not 200 <= response.status_code < 300:
            raise WebhookRefused(response.status_code)


class WebhookRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the receiver answered {status}")


def _describe(exc: Exception) -> str:
    """What went wrong, without anything the exception may quote (a URL, a credential)."""
    if isinstance(exc, WebhookRefused):
        return str(exc)
    return type(exc).__name__


def _notice(row: Any) -> Notice:
    return Notice(
        id=row["id"],
        event_id=row["event_id"],
        channel=row["channel"],
        attempts=row["attempts"],
        give_up_at=row["give_up_at"],
        type=row["type"],
        at=row["occurred_at"],
        agent=row["agent_name"],
        case_ref=row["case_ref"],
        reason=row["reason"],
        account_id=row["account_id"],
        email=row["email"],
        language=row["language"] or "en",
        voided=row["voided"],
    )
