"""Against fake support calls: agent-started confirmation with number matching, the call
status, and notices by email (a real SMTP server, aiosmtpd) and webhooks (a real HTTP
receiver), on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.conftest import Harness, HarnessFactory, assert_problem, wrong_pin
from tests.live import free_port
from tests.mailbox import Inbox, eventually

WEBHOOK_SECRET = "whsec_" + "c2VjcmV0LWZvci10aGUtd2ViaG9vay10ZXN0cw=="


# -- confirmations --------------------------------------------------------------------------


async def request(h: Harness, agent: dict[str, str], email_address: str, **more: Any) -> Any:
    response = await h.client.post(
        "/v1/agent/confirmations", headers=agent, json={"email": email_address, **more}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def state(h: Harness, agent: dict[str, str], confirmation_id: str) -> Any:
    response = await h.client.get(f"/v1/agent/confirmations/{confirmation_id}", headers=agent)
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_right_number_approves_and_the_agent_sees_it(h: Harness) -> None:
    email_address, user = await h.user()
    _, agent = await h.agent("Sam")
    asked = await request(h, agent, email_address, case_ref="CASE-1")
    assert re.fullmatch(r"[0-9]{2}", asked["code"])
    assert (await state(h, agent, asked["id"])) == {"status": "pending", "decided_at": None}

    pending = (await h.client.get("/v1/me/confirmations", headers=user)).json()["confirmations"]
    assert len(pending) == 1
    assert pending[0]["agent"] == "Sam"
    assert pending[0]["case_ref"] == "CASE-1"
    assert asked["code"] in pending[0]["choices"]
    assert len(set(pending[0]["choices"])) == 3
    contact = (await h.client.get("/v1/me/support-contact", headers=user)).json()
    assert contact["in_contact"] is True
    assert contact["agent"] == "Sam"

    answered = await h.client.post(
        f"/v1/me/confirmations/{asked['id']}", headers=user, json={"choice": asked["code"]}
    )
    assert answered.json() == {"status": "approved"}
    decided = await state(h, agent, asked["id"])
    assert decided["status"] == "approved"
    assert decided["decided_at"] is not None
    # Answered once: the request is gone.
    again = await h.client.post(
        f"/v1/me/confirmations/{asked['id']}", headers=user, json={"choice": asked["code"]}
    )
    assert_problem(again, 404, "not_found")
    events = await h.events(user)
    assert [event["type"] for event in events[:2]] == [
        "confirmation_approved",
        "confirmation_requested",
    ]
    assert events[0]["agent"] == "Sam"
    assert events[0]["case_ref"] == "CASE-1"
    contact = (await h.client.get("/v1/me/support-contact", headers=user)).json()
    assert contact["in_contact"] is True  # the window after a confirmation


async def test_a_wrong_number_denies_and_counts_toward_the_lock(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(account_max_failures=2)
    email_address, user = await h.user()
    _, agent = await h.agent()
    for _ in range(2):
        asked = await request(h, agent, email_address)
        choices = (await h.client.get("/v1/me/confirmations", headers=user)).json()[
            "confirmations"
        ][0]["choices"]
        wrong = next(choice for choice in choices if choice != asked["code"])
        answered = await h.client.post(
            f"/v1/me/confirmations/{asked['id']}", headers=user, json={"choice": wrong}
        )
        assert answered.json() == {"status": "denied"}
        assert (await state(h, agent, asked["id"]))["status"] == "denied"
    # Two wrong numbers: the account is locked, the right PIN no longer verifies.
    pin = await h.issue_pin(user)
    assert (await h.verify(agent, email_address, pin))["valid"] is False
    types = [event["type"] for event in await h.events(user)]
    assert "locked" in types
    assert types.count("confirmation_denied") == 2


async def test_not_on_a_call_denies_and_reports(h: Harness) -> None:
    email_address, user = await h.user()
    _, agent = await h.agent()
    asked = await request(h, agent, email_address)
    denied = await h.client.post(f"/v1/me/confirmations/{asked['id']}/deny", headers=user)
    assert denied.json() == {"status": "denied"}
    assert (await state(h, agent, asked["id"]))["status"] == "denied"
    types = [event["type"] for event in await h.events(user)]
    assert types[:2] == ["reported", "confirmation_denied"]
    contact = (await h.client.get("/v1/me/support-contact", headers=user)).json()
    assert contact == {"in_contact": False, "agent": None, "case_ref": None, "since": None}


async def test_a_request_expires_and_a_new_one_replaces_it(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(confirmation_ttl_seconds=1)
    email_address, user = await h.user()
    _, agent = await h.agent()
    first = await request(h, agent, email_address)
    second = await request(h, agent, email_address)
    assert (await state(h, agent, first["id"]))["status"] == "expired"  # replaced
    pending = (await h.client.get("/v1/me/confirmations", headers=user)).json()["confirmations"]
    assert [item["id"] for item in pending] == [second["id"]]
    await asyncio.sleep(1.1)
    assert (await state(h, agent, second["id"]))["status"] == "expired"
    assert (await h.client.get("/v1/me/confirmations", headers=user)).json() == {
        "confirmations": []
    }
    late = await h.client.post(
        f"/v1/me/confirmations/{second['id']}", headers=user, json={"choice": second["code"]}
    )
    assert_problem(late, 404, "not_found")


async def test_an_unknown_account_is_answered_the_same(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(confirmation_ttl_seconds=1)
    email_address, _ = await h.user()
    _, agent = await h.agent()
    known = await request(h, agent, email_address)
    unknown = await request(h, agent, f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    assert set(known) == set(unknown) == {"id", "code", "expires_at"}
    assert (await state(h, agent, unknown["id"])) == {"status": "pending", "decided_at": None}
    await asyncio.sleep(1.1)
    assert (await state(h, agent, unknown["id"]))["status"] == "expired"
    assert (await state(h, agent, known["id"]))["status"] == "expired"


async def test_another_agent_cannot_read_a_request(h: Harness) -> None:
    email_address, _ = await h.user()
    _, agent = await h.agent()
    _, other = await h.agent()
    asked = await request(h, agent, email_address)
    response = await h.client.get(f"/v1/agent/confirmations/{asked['id']}", headers=other)
    assert_problem(response, 404, "not_found")


async def test_at_most_three_requests_per_account_per_ten_minutes(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(rate_limit_confirm_per_account="3 per 10 minutes")
    email_address, _ = await h.user()
    _, agent = await h.agent()
    for _ in range(3):
        await request(h, agent, email_address)
    refused = await h.client.post(
        "/v1/agent/confirmations", headers=agent, json={"email": email_address}
    )
    assert_problem(refused, 429, "rate_limited")


async def test_call_status_window_after_a_verification(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(contact_window_seconds=1)
    email_address, user = await h.user()
    assert (await h.client.get("/v1/me/support-contact", headers=user)).json()[
        "in_contact"
    ] is False
    _, agent = await h.agent("Robin")
    pin = await h.issue_pin(user)
    await h.client.post(
        "/v1/agent/verifications",
        headers=agent,
        json={"email": email_address, "pin": pin, "case_ref": "C-9"},
    )
    contact = (await h.client.get("/v1/me/support-contact", headers=user)).json()
    assert contact["in_contact"] is True
    assert contact["agent"] == "Robin"
    assert contact["case_ref"] == "C-9"
    assert contact["since"] is not None
    await asyncio.sleep(1.1)
    assert (await h.client.get("/v1/me/support-contact", headers=user)).json()[
        "in_contact"
    ] is False
    # A failed check opens no window.
    await h.verify(agent, email_address, wrong_pin(await h.issue_pin(user)))
    assert (await h.client.get("/v1/me/support-contact", headers=user)).json()[
        "in_contact"
    ] is False


# -- notices: a real SMTP server and a real webhook receiver --------------------------------


class Receiver:
    """A webhook receiver: a real HTTP server that checks each signature."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.fail_next = 0
        self.down = False
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.lock:
                    refuse = receiver.down or receiver.fail_next > 0
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                    if not refuse:
                        payload = Webhook(WEBHOOK_SECRET).verify(body, dict(self.headers))
                        receiver.received.append(payload)
                        receiver.ids.append(self.headers["webhook-id"])
                self.send_response(503 if refuse else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    state = Receiver()
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), state.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, port
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def noticed(
    # The servers first: set up before the service and stopped after it, so no delivery is
    # under way when they stop.
    smtp: tuple[Inbox, int],
    receiver: tuple[Receiver, int],
    harness_factory: HarnessFactory,
) -> tuple[Harness, Inbox, Receiver]:
    inbox, smtp_port = smtp
    state, http_port = receiver
    h = await harness_factory(
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        mail_from="Support <support@company.example>",
        webhook_url=f"http://127.0.0.1:{http_port}/hooks",
        webhook_secret=WEBHOOK_SECRET,
        public_url="https://support.company.example",
    )
    return h, inbox, state


async def test_a_verification_is_emailed_and_its_link_locks_support_access(
    noticed: tuple[Harness, Inbox, Receiver],
) -> None:
    h, inbox, _ = noticed
    email_address, user = await h.user()
    _, agent = await h.agent("Kim")
    pin = await h.issue_pin(user)
    await h.client.post(
        "/v1/agent/verifications",
        headers=agent,
        json={"email": email_address, "pin": pin, "case_ref": "T-7"},
    )
    messages = await eventually(lambda: inbox.to(email_address))
    message = messages[0]
    assert message["Subject"] == "Support checked your support PIN"
    assert message.is_multipart()
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Kim" in plain
    assert "T-7" in plain
    assert pin not in plain
    assert "This wasn&#x27;t me</a>" in html
    link = re.search(r"https://support\.company\.example/report#token=(rpt_[A-Za-z0-9_-]+)", plain)
    assert link is not None

    reported = await h.client.post("/v1/report", json={"token": link.group(1)})
    assert reported.status_code == 200, reported.text
    # Every session ended, the PIN revoked, checks refused.
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
    again = await h.client.post("/v1/report", json={"token": link.group(1)})
    assert_problem(again, 400, "invalid_token")
    token = await h.sign_in(email_address)
    fresh = {"Authorization": f"Bearer {token}"}
    new_pin = await h.issue_pin(fresh)
    assert (await h.verify(agent, email_address, new_pin))["valid"] is False
    confirmation = await request(h, agent, email_address)
    assert confirmation["id"]
    assert (await h.client.get("/v1/me/confirmations", headers=fresh)).json() == {
        "confirmations": []
    }
    types = [event["type"] for event in await h.events(fresh)]
    assert "reported" in types


async def test_email_in_the_language_of_the_last_sign_in(
    noticed: tuple[Harness, Inbox, Receiver],
) -> None:
    h, inbox, _ = noticed
    email_address = await h.signup()
    answer = await h.client.post(
        "/v1/auth/token",
        data={"username": email_address, "password": "correct horse battery staple"},
        headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"},
    )
    user = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    _, agent = await h.agent()
    await h.verify(agent, email_address, await h.issue_pin(user))
    message = (await eventually(lambda: inbox.to(email_address)))[0]
    assert message["Subject"] == "Supporten kontrollerade din support-PIN"


async def test_webhooks_are_signed_and_retried_until_they_succeed(
    noticed: tuple[Harness, Inbox, Receiver],
) -> None:
    h, _, state = noticed
    state.fail_next = 2
    email_address, user = await h.user()
    _, agent = await h.agent("Lee")
    await h.verify(agent, email_address, await h.issue_pin(user))
    payloads = await eventually(lambda: list(state.received), seconds=40)
    payload = payloads[0]
    assert payload["type"] == "pin.verified"
    assert payload["data"]["agent"] == "Lee"
    assert payload["data"]["email"] == email_address
    assert state.ids == [payload["id"]]
    assert state.fail_next == 0  # the third try was the one that worked
    assert "pin" not in json.dumps(payload["data"])


async def test_notices_written_while_both_are_down_arrive_once_they_are_back(
    noticed: tuple[Harness, Inbox, Receiver],
) -> None:
    h, inbox, state = noticed
    inbox.refuse = True
    state.down = True
    email_address, user = await h.user()
    _, agent = await h.agent()
    await h.verify(agent, email_address, await h.issue_pin(user))
    await asyncio.sleep(1.5)  # at least one failed try of each
    assert not inbox.to(email_address)
    assert not state.received
    inbox.refuse = False
    state.down = False
    await eventually(lambda: inbox.to(email_address), seconds=20)
    await eventually(lambda: state.received, seconds=20)
    await asyncio.sleep(0.5)
    assert len(inbox.to(email_address)) == 1
    assert len(state.received) == 1


async def test_admins_see_and_retry_notices(
    noticed: tuple[Harness, Inbox, Receiver],
) -> None:
    from tests.staffing import staff_member

    h, inbox, _ = noticed
    admin = await staff_member(h, "admin")
    email_address, user = await h.user()
    _, agent = await h.agent()
    await h.verify(agent, email_address, await h.issue_pin(user))
    await eventually(lambda: inbox.to(email_address))

    async def delivered() -> list[Any]:
        listed = await h.client.get(
            "/v1/admin/notices", headers=admin.headers, params={"status": "delivered"}
        )
        return [n for n in listed.json()["notices"] if n["account_email"] == email_address]

    found: list[Any] = []
    deadline = time.monotonic() + 10
    while len(found) < 2 and time.monotonic() < deadline:
        found = await delivered()
        await asyncio.sleep(0.1)
    assert {notice["channel"] for notice in found} == {"email", "webhook"}
    retry = await h.client.post(f"/v1/admin/notices/{found[0]['id']}/retry", headers=admin.headers)
    assert_problem(retry, 404, "not_found")  # only a failed notice is retried


async def test_the_page_button_locks_support_access(h: Harness) -> None:
    email_address, user = await h.user()
    pin = await h.issue_pin(user)
    locked = await h.client.post("/v1/me/support-lock", headers=user)
    assert locked.json() == {"status": "locked", "locked_for_seconds": 86400}
    assert_problem(await h.client.get("/v1/me", headers=user), 401, "unauthenticated")
    _, agent = await h.agent()
    assert (await h.verify(agent, email_address, pin))["valid"] is False
    fresh = {"Authorization": f"Bearer {await h.sign_in(email_address)}"}
    assert (await h.verify(agent, email_address, await h.issue_pin(fresh)))["valid"] is False
    types = [event["type"] for event in await h.events(fresh)]
    assert {"reported", "locked", "revoked"} <= set(types)
