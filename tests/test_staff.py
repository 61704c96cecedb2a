"""Support staff as people: set-up, sign-in with a second factor, roles, case references,
administration and the audit search, on real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from urllib.parse import urlsplit

import pytest

from tests.conftest import PASSWORD, Harness, HarnessFactory, assert_problem, wrong_pin
from tests.staffing import code_at, set_up, sign_in_staff, staff_member


async def test_a_set_up_agent_signs_in_with_a_second_factor_and_verifies(h: Harness) -> None:
    agent = await staff_member(h, "agent", name="Sam Support")
    me = await h.client.get("/v1/staff/me", headers=agent.headers)
    assert me.json() == {
        "id": agent.id,
        "email": agent.email,
        "name": "Sam Support",
        "role": "agent",
        "source": "builtin",
    }
    email, user = await h.user()
    pin = await h.issue_pin(user)
    verified = await h.client.post(
        "/v1/agent/verifications",
        headers=agent.headers,
        json={"email": email, "pin": pin, "case_ref": "CASE-20417"},
    )
    assert verified.json()["valid"] is True
    events = await h.events(user)
    assert events[0]["type"] == "verified"
    assert events[0]["agent"] == "Sam Support"
    assert events[0]["case_ref"] == "CASE-20417"


async def test_a_right_password_alone_never_signs_staff_in(h: Harness) -> None:
    added = await h.services.staff.add("solo@corp.example", "Solo", "admin", actor="test")
    await set_up(h, added.setup_token)
    answer = await h.client.post(
        "/v1/staff/auth/token", data={"username": "solo@corp.example", "password": PASSWORD}
    )
    body = assert_problem(answer, 401, "mfa_required")
    assert body["mfa_token"].startswith("ssm_")
    assert "access_token" not in body


async def test_wrong_password_unknown_email_and_unfinished_set_up_answer_alike(
    h: Harness,
) -> None:
    added = await h.services.staff.add("pending@corp.example", "Pending", "agent", actor="test")
    ready = await staff_member(h, "agent")
    answers = [
        await h.client.post("/v1/staff/auth/token", data={"username": user, "password": pw})
        for user, pw in (
            (ready.email, PASSWORD + "!"),
            ("nobody@corp.example", PASSWORD),
            (added.staff.email, PASSWORD),
        )
    ]
    bodies = []
    for answer in answers:
        body = assert_problem(answer, 401, "invalid_credentials")
        body.pop("request_id", None)
        bodies.append(body)
    assert bodies[0] == bodies[1] == bodies[2]


async def test_a_wrong_code_is_refused_and_a_code_works_once(h: Harness) -> None:
    agent = await staff_member(h, "agent")
    first = await h.client.post(
        "/v1/staff/auth/token", data={"username": agent.email, "password": PASSWORD}
    )
    token = first.json()["mfa_token"]
    wrong = await h.client.post(
        "/v1/staff/auth/token/mfa", json={"mfa_token": token, "code": "000000"}
    )
    assert_problem(wrong, 401, "invalid_code")
    # The code the sign-in in staff_member used (this step + 1) was spent.
    reused = await h.client.post(
        "/v1/staff/auth/token/mfa", json={"mfa_token": token, "code": code_at(agent.secret, 1)}
    )
    assert_problem(reused, 401, "invalid_code")


async def test_a_set_up_link_works_once(h: Harness) -> None:
    added = await h.services.staff.add("once@corp.example", "Once", "agent", actor="test")
    await set_up(h, added.setup_token)
    again = await h.client.post(
        "/v1/staff/setup", json={"token": added.setup_token, "password": PASSWORD}
    )
    assert_problem(again, 401, "invalid_credentials")
    made_up = await h.client.post(
        "/v1/staff/setup", json={"token": "sst_" + "x" * 43, "password": PASSWORD}
    )
    assert_problem(made_up, 401, "invalid_credentials")


async def test_the_set_up_password_follows_the_customer_rules(h: Harness) -> None:
    added = await h.services.staff.add("rules@corp.example", "Rules", "agent", actor="test")
    weak = await h.client.post(
        "/v1/staff/setup", json={"token": added.setup_token, "password": "password1234"}
    )
    assert_problem(weak, 422, "password_refused")


async def test_disabling_or_a_role_change_ends_sessions_at_once(h: Harness) -> None:
    admin = await staff_member(h, "admin")
    agent = await staff_member(h, "agent")
    assert (await h.client.get("/v1/staff/me", headers=agent.headers)).status_code == 200
    changed = await h.client.patch(
        f"/v1/admin/staff/{agent.id}", headers=admin.headers, json={"role": "supervisor"}
    )
    assert changed.json()["role"] == "supervisor"
    assert_problem(
        await h.client.get("/v1/staff/me", headers=agent.headers), 401, "unauthenticated"
    )

    token = await sign_in_staff(h, agent.email, agent.secret, steps_ahead=-1)
    again = {"Authorization": f"Bearer {token}"}
    assert (await h.client.get("/v1/staff/me", headers=again)).json()["role"] == "supervisor"
    disabled = await h.client.patch(
        f"/v1/admin/staff/{agent.id}", headers=admin.headers, json={"disabled": True}
    )
    assert disabled.json()["disabled"] is True
    assert_problem(await h.client.get("/v1/staff/me", headers=again), 401, "unauthenticated")
    refused = await h.client.post(
        "/v1/staff/auth/token", data={"username": agent.email, "password": PASSWORD}
    )
    assert_problem(refused, 401, "invalid_credentials")


async def test_the_last_admin_stays(h: Harness) -> None:
    # The database is the run's: disable every admin but this test's own first.
    admin = await staff_member(h, "admin")
    for staff in await h.services.staff.list():
        if staff.role == "admin" and not staff.disabled and str(staff.id) != admin.id:
            await h.services.staff.update(staff.id, disabled=True, actor="test")
    for change in ({"role": "agent"}, {"disabled": True}):
        refused = await h.client.patch(
            f"/v1/admin/staff/{admin.id}", headers=admin.headers, json=change
        )
        assert_problem(refused, 409, "last_admin")
    second = await staff_member(h, "admin")
    demoted = await h.client.patch(
        f"/v1/admin/staff/{admin.id}", headers=second.headers, json={"role": "agent"}
    )
    assert demoted.status_code == 200


async def test_admins_add_staff_with_a_set_up_link(h: Harness) -> None:
    admin = await staff_member(h, "admin")
    email = f"new-{uuid.uuid4().hex[:8]}@corp.example"
    added = await h.client.post(
        "/v1/admin/staff",
        headers=admin.headers,
        json={"email": email, "name": "New", "role": "agent"},
    )
    assert added.status_code == 201, added.text
    link = urlsplit(added.json()["setup_url"])
    assert link.path == "/staff/setup"
    assert link.query == ""  # the secret is in the fragment only
    token = link.fragment.removeprefix("token=")
    secret = await set_up(h, token)
    assert await sign_in_staff(h, email, secret)
    again = await h.client.post(
        "/v1/admin/staff",
        headers=admin.headers,
        json={"email": email, "name": "X", "role": "agent"},
    )
    assert_problem(again, 409, "staff_exists")
    listed = (await h.client.get("/v1/admin/staff", headers=admin.headers)).json()["staff"]
    mine = next(staff for staff in listed if staff["email"] == email)
    assert mine["source"] == "builtin"
    assert mine["last_sign_in_at"] is not None
    assert set(mine) == {"id", "email", "name", "role", "source", "disabled", "last_sign_in_at"}


async def test_api_keys_are_created_listed_revoked_and_their_names_reused(
    harness_factory: HarnessFactory,
) -> None:
    one = await harness_factory()
    other = await harness_factory()  # a second instance of the service
    admin = await staff_member(one, "admin")
    name = f"crm-{uuid.uuid4().hex[:6]}"
    created = await one.client.post(
        "/v1/admin/api-keys", headers=admin.headers, json={"name": name, "expires_in_days": 30}
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert created.json()["expires_at"] is not None
    headers = {"Authorization": f"Bearer {key}"}
    body = {"email": "nobody@example.com", "pin": "123456"}
    assert (
        await other.client.post("/v1/agent/verifications", headers=headers, json=body)
    ).is_success
    listed = (await one.client.get("/v1/admin/api-keys", headers=admin.headers)).json()["api_keys"]
    entry = next(item for item in listed if item["name"] == name)
    assert key not in str(listed)
    assert entry["revoked"] is False
    assert entry["last_used_at"] is not None
    duplicate = await one.client.post(
        "/v1/admin/api-keys", headers=admin.headers, json={"name": name}
    )
    assert_problem(duplicate, 409, "agent_exists")

    revoked = await one.client.delete(f"/v1/admin/api-keys/{entry['id']}", headers=admin.headers)
    assert revoked.status_code == 204
    # Refused at once by the other instance, which had the key in its one-second cache.
    refused = await other.client.post("/v1/agent/verifications", headers=headers, json=body)
    assert_problem(refused, 401, "unauthenticated")
    reused = await one.client.post("/v1/admin/api-keys", headers=admin.headers, json={"name": name})
    assert reused.status_code == 201


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "emoji😀", "semi;colon"])
async def test_api_key_names_are_checked(h: Harness, name: str) -> None:
    admin = await staff_member(h, "admin")
    refused = await h.client.post("/v1/admin/api-keys", headers=admin.headers, json={"name": name})
    assert_problem(refused, 422, "validation_error")


async def test_unlock_clears_the_pin_lock(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(account_max_failures=2)
    admin = await staff_member(h, "admin")
    email, user = await h.user()
    pin = await h.issue_pin(user)
    _, key = await h.agent()
    for _ in range(2):
        await h.verify(key, email, wrong_pin(pin))
    assert (await h.verify(key, email, pin))["valid"] is False  # locked
    for address in (email, "nobody-at-all@example.com"):
        unlocked = await h.client.post(
            "/v1/admin/accounts/unlock", headers=admin.headers, json={"email": address}
        )
        assert unlocked.status_code == 204
    pin = await h.issue_pin(user)
    assert (await h.verify(key, email, pin))["valid"] is True
    found = await h.client.get(
        "/v1/admin/audit",
        headers=admin.headers,
        params={"type": "account_unlocked", "actor": admin.email},
    )
    targets = [event["target"] for event in found.json()["events"]]
    assert targets == ["nobody-at-all@example.com", email]


async def test_the_audit_search_filters_pages_and_downloads_csv(h: Harness) -> None:
    supervisor = await staff_member(h, "supervisor")
    agent = await staff_member(h, "agent", name="Case Worker")
    email, user = await h.user()
    case = f"CASE-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        pin = await h.issue_pin(user)
        await h.client.post(
            "/v1/agent/verifications",
            headers=agent.headers,
            json={"email": email, "pin": pin, "case_ref": case},
        )
    page = await h.client.get(
        "/v1/admin/audit", headers=supervisor.headers, params={"case_ref": case, "limit": 2}
    )
    assert page.status_code == 200, page.text
    first = page.json()
    assert [event["type"] for event in first["events"]] == ["verified", "verified"]
    assert first["events"][0]["account_email"] == email
    assert first["events"][0]["actor"] == agent.email
    assert first["next_cursor"]
    rest = await h.client.get(
        "/v1/admin/audit",
        headers=supervisor.headers,
        params={"case_ref": case, "limit": 2, "cursor": first["next_cursor"]},
    )
    assert len(rest.json()["events"]) == 1
    assert rest.json()["next_cursor"] is None
    ids = [event["id"] for event in first["events"] + rest.json()["events"]]
    assert ids == sorted(ids, reverse=True)

    by_email = await h.client.get(
        "/v1/admin/audit", headers=supervisor.headers, params={"email": email.upper()}
    )
    assert {event["type"] for event in by_email.json()["events"]} == {"issued", "verified"}

    exported = await h.client.get(
        "/v1/admin/audit",
        headers={**supervisor.headers, "Accept": "text/csv"},
        params={"case_ref": case, "limit": 1},
    )
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["id", "at", "type"]
    assert len(rows) == 4  # the header and every page, whatever `limit` says
    assert {row[5] for row in rows[1:]} == {case}


async def test_a_bad_cursor_is_400(h: Harness) -> None:
    supervisor = await staff_member(h, "supervisor")
    response = await h.client.get(
        "/v1/admin/audit", headers=supervisor.headers, params={"cursor": "bm90LWEtY3Vyc29y"}
    )
    assert_problem(response, 400, "invalid_cursor")


async def test_csv_cells_cannot_run_as_formulas(h: Harness) -> None:
    supervisor = await staff_member(h, "supervisor")
    _, key = await h.agent()
    case = "=HYPERLINK(1)" + uuid.uuid4().hex[:4]
    await h.client.post(
        "/v1/agent/verifications",
        headers=key,
        json={"email": "x@example.com", "pin": "123456", "case_ref": case},
    )
    exported = await h.client.get(
        "/v1/admin/audit",
        headers={**supervisor.headers, "Accept": "text/csv"},
        params={"case_ref": case},
    )
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[1][5] == "'" + case


async def test_every_administrative_action_is_audited_with_its_actor(h: Harness) -> None:
    admin = await staff_member(h, "admin")
    email = f"audited-{uuid.uuid4().hex[:6]}@corp.example"
    added = await h.client.post(
        "/v1/admin/staff",
        headers=admin.headers,
        json={"email": email, "name": "A", "role": "agent"},
    )
    staff_id = added.json()["id"]
    for change in ({"role": "supervisor"}, {"disabled": True}, {"disabled": False}):
        await h.client.patch(f"/v1/admin/staff/{staff_id}", headers=admin.headers, json=change)
    name = f"k-{uuid.uuid4().hex[:6]}"
    key = await h.client.post("/v1/admin/api-keys", headers=admin.headers, json={"name": name})
    await h.client.delete(f"/v1/admin/api-keys/{key.json()['id']}", headers=admin.headers)
    await h.client.post("/v1/admin/accounts/unlock", headers=admin.headers, json={"email": email})
    found = await h.client.get(
        "/v1/admin/audit", headers=admin.headers, params={"actor": admin.email, "limit": 500}
    )
    types = [event["type"] for event in found.json()["events"]]
    assert types == [
        "account_unlocked",
        "api_key_revoked",
        "api_key_created",
        "staff_enabled",
        "staff_disabled",
        "staff_role_changed",
        "staff_added",
        "staff_signed_in",  # the admin's own sign-in, before all of it
    ]


async def test_concurrent_sign_ins_with_one_code_make_one_session(h: Harness) -> None:
    agent = await staff_member(h, "agent")
    tokens = []
    for _ in range(2):
        first = await h.client.post(
            "/v1/staff/auth/token", data={"username": agent.email, "password": PASSWORD}
        )
        tokens.append(first.json()["mfa_token"])
    code = code_at(agent.secret, -1)
    answers = await asyncio.gather(
        *(
            h.client.post("/v1/staff/auth/token/mfa", json={"mfa_token": t, "code": code})
            for t in tokens
        )
    )
    assert sorted(answer.status_code for answer in answers) == [200, 401]


async def test_a_new_set_up_link_replaces_lost_credentials(h: Harness) -> None:
    admin = await staff_member(h, "admin")
    agent = await staff_member(h, "agent")
    again = await h.client.post(f"/v1/admin/staff/{agent.id}/setup-link", headers=admin.headers)
    assert again.status_code == 201, again.text
    assert_problem(
        await h.client.get("/v1/staff/me", headers=agent.headers), 401, "unauthenticated"
    )
    old = await h.client.post(
        "/v1/staff/auth/token", data={"username": agent.email, "password": PASSWORD}
    )
    assert_problem(old, 401, "invalid_credentials")
    token = urlsplit(again.json()["setup_url"]).fragment.removeprefix("token=")
    # A time-step its first set-up and sign-in have not spent (each is accepted once); the
    # three steps a code may use are then all spent, so the new sign-in stops at its first
    # step, which shows the new password works.
    secret = await set_up(h, token, password=PASSWORD + " again", steps_ahead=-1)
    assert secret != agent.secret
    first = await h.client.post(
        "/v1/staff/auth/token", data={"username": agent.email, "password": PASSWORD + " again"}
    )
    assert_problem(first, 401, "mfa_required")
    missing = await h.client.post(
        f"/v1/admin/staff/{uuid.uuid4()}/setup-link", headers=admin.headers
    )
    assert_problem(missing, 404, "not_found")
