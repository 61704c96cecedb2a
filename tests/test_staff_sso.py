"""Staff single sign-on through the company's workforce provider, against a real provider
(npm's oidc-provider, tests/idp.py) on loopback: roles from the `groups` claim, refusals,
the one-time code, and what happens when it is not configured.

One provider for the module. Staff of single sign-on are keyed by (issuer, subject), so each
test that changes a person (a role, disabling) signs in a user of its own; the addresses are
tagged per module, as the database is shared by the whole run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Harness, HarnessFactory, assert_problem
from tests.idp import DEFAULT_USERS, IDP_PASSWORD, IdentityProvider
from tests.staffing import staff_member

STAFF_CLIENT: dict[str, Any] = {
    "client_id": "support-pin-staff",
    "client_secret": "staff-client-secret-" + "s" * 24,
    "redirect_uris": ["http://testserver/v1/staff/auth/oidc/callback"],
}
# The customers' sign-in, for the codes that must not cross over.
CUSTOMER_CLIENT: dict[str, Any] = {
    "client_id": "support-pin-customers",
    "client_secret": "customer-client-secret-" + "c" * 24,
    "redirect_uris": ["http://testserver/v1/auth/oidc/callback"],
}
ROLE_MAP = {"support-agents": "agent", "support-leads": "supervisor", "support-admins": "admin"}
HTML = {"accept": "text/html,application/xhtml+xml"}


def _like_agent1(name: str, groups: list[str]) -> dict[str, Any]:
    return {**DEFAULT_USERS["agent1"], "name": name, "groups": groups}


def users_of_this_module() -> dict[str, dict[str, Any]]:
    """The default users, and some of this module's own (each test that changes a person has
    one), all with addresses no other module uses."""
    users = {
        **DEFAULT_USERS,
        "multi": _like_agent1("Mia Multi", ["support-agents", "marketing", "support-admins"]),
        "changer": _like_agent1("Cam Changer", ["support-agents"]),
        "leaver": _like_agent1("Lee Leaver", ["support-agents"]),
        "twin": _like_agent1("Tom Twin", ["support-agents"]),
        "coder": _like_agent1("Cody Coder", ["support-agents"]),
    }
    tag = secrets.token_hex(4)
    return {name: {**user, "email": f"{name}+{tag}@corp.example"} for name, user in users.items()}


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider.start(
        users=users_of_this_module(), clients=[STAFF_CLIENT, CUSTOMER_CLIENT]
    ) as provider:
        yield provider


def staff_sso_settings(idp: IdentityProvider, **more: Any) -> dict[str, Any]:
    return {
        "staff_oidc_issuer": idp.issuer,
        "staff_oidc_client_id": STAFF_CLIENT["client_id"],
        "staff_oidc_client_secret": STAFF_CLIENT["client_secret"],
        "staff_oidc_scopes": "openid email profile groups",
        "staff_oidc_role_map": ROLE_MAP,
        "staff_oidc_display_name": "Corp SSO",
        **more,
    }


@pytest.fixture
async def sh(harness_factory: HarnessFactory, idp: IdentityProvider) -> Harness:
    return await harness_factory(**staff_sso_settings(idp))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def at_provider(h: Harness, idp: IdentityProvider, user: str) -> str:
    """Start the staff sign-in and sign `user` in at the provider in a browser of its own
    (no session there from another user): the callback URL the provider sends it back to."""
    login = await h.client.get("/v1/staff/auth/oidc/login")
    assert login.status_code == 302, login.text
    async with httpx.AsyncClient(timeout=10.0) as browser:
        return await idp.login(browser, login.headers["location"], user, IDP_PASSWORD)


async def sso_code(h: Harness, idp: IdentityProvider, user: str) -> str:
    """The browser flow up to the agent console's page: the one-time code in its fragment."""
    landed = await h.client.get(await at_provider(h, idp, user), headers=HTML)
    assert landed.status_code == 302, landed.text
    location: str = landed.headers["location"]
    assert location.startswith("/agent#sso="), location
    assert "sss_" not in location  # the session token never travels in a URL
    return location.removeprefix("/agent#sso=")


async def sso_sign_in(h: Harness, idp: IdentityProvider, user: str) -> dict[str, str]:
    """The whole flow: the staff session's auth headers."""
    answer = await h.client.post(
        "/v1/staff/auth/oidc/token", json={"code": await sso_code(h, idp, user)}
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    assert token.startswith("sss_")
    return bearer(token)


async def staff_me(h: Harness, headers: dict[str, str]) -> dict[str, Any]:
    me = await h.client.get("/v1/staff/me", headers=headers)
    assert me.status_code == 200, me.text
    body: dict[str, Any] = me.json()
    return body


# -- sign-in and roles ------------------------------------------------------------------------


async def test_the_login_asks_for_the_groups(sh: Harness, idp: IdentityProvider) -> None:
    login = await sh.client.get("/v1/staff/auth/oidc/login")
    location = login.headers["location"]
    assert location.startswith(idp.authorization_endpoint + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["client_id"] == STAFF_CLIENT["client_id"]
    assert query["redirect_uri"] == STAFF_CLIENT["redirect_uris"][0]
    assert set(query["scope"].split()) == {"openid", "email", "profile", "groups"}
    assert query["code_challenge_method"] == "S256"


async def test_an_agent_signs_in_and_verifies_a_pin(sh: Harness, idp: IdentityProvider) -> None:
    agent = await sso_sign_in(sh, idp, "agent1")
    me = await staff_me(sh, agent)
    assert me["role"] == "agent"
    assert me["source"] == "sso"
    assert me["email"] == idp.users["agent1"]["email"]
    assert me["name"] == "Agnes Agent"

    email, user = await sh.user()
    pin = await sh.issue_pin(user)
    verified = await sh.verify(agent, email, pin)
    assert verified["valid"] is True
    events = await sh.events(user)
    assert events[0]["type"] == "verified"
    assert events[0]["agent"] == "Agnes Agent"
    # An agent administers nothing.
    assert_problem(await sh.client.get("/v1/admin/staff", headers=agent), 403, "forbidden")
    assert_problem(await sh.client.get("/v1/admin/audit", headers=agent), 403, "forbidden")


async def test_a_lead_is_a_supervisor(sh: Harness, idp: IdentityProvider) -> None:
    lead = await sso_sign_in(sh, idp, "lead1")
    assert (await staff_me(sh, lead))["role"] == "supervisor"
    assert (await sh.client.get("/v1/admin/audit", headers=lead)).status_code == 200
    assert_problem(await sh.client.get("/v1/admin/staff", headers=lead), 403, "forbidden")


async def test_an_admin_signs_in_and_lists_staff(sh: Harness, idp: IdentityProvider) -> None:
    admin = await sso_sign_in(sh, idp, "admin1")
    me = await staff_me(sh, admin)
    assert me["role"] == "admin"
    assert me["source"] == "sso"
    listed = await sh.client.get("/v1/admin/staff", headers=admin)
    assert listed.status_code == 200, listed.text
    mine = next(staff for staff in listed.json()["staff"] if staff["id"] == me["id"])
    assert mine["email"] == idp.users["admin1"]["email"]
    assert mine["name"] == "Ada Admin"
    assert mine["source"] == "sso"
    assert mine["last_sign_in_at"] is not None
    # The sign-in is in the audit log, as the person's.
    found = await sh.client.get(
        "/v1/admin/audit",
        headers=admin,
        params={"type": "staff_signed_in", "actor": me["email"]},
    )
    assert [event["reason"] for event in found.json()["events"]][:1] == ["sso"]


async def test_the_highest_mapped_role_wins(sh: Harness, idp: IdentityProvider) -> None:
    multi = await sso_sign_in(sh, idp, "multi")  # support-agents, marketing, support-admins
    assert (await staff_me(sh, multi))["role"] == "admin"


async def test_someone_without_a_support_group_is_not_staff(
    sh: Harness, idp: IdentityProvider
) -> None:
    in_a_browser = await sh.client.get(await at_provider(sh, idp, "outsider"), headers=HTML)
    assert in_a_browser.status_code == 302
    assert in_a_browser.headers["location"] == "/agent#sso_error=not_staff"
    from_a_client = await sh.client.get(await at_provider(sh, idp, "outsider"))
    assert_problem(from_a_client, 403, "not_staff")
    assert await sh.services.staff.by_email(idp.users["outsider"]["email"]) is None


async def test_the_role_is_read_again_at_every_sign_in(sh: Harness, idp: IdentityProvider) -> None:
    """The provider's users are fixed while it runs, and a restarted provider is another
    issuer (another person here): so the role is changed here, and the next sign-in puts
    the provider's back."""
    admin = await staff_member(sh, "admin")
    first = await sso_sign_in(sh, idp, "changer")  # support-agents
    me = await staff_me(sh, first)
    assert me["role"] == "agent"
    promoted = await sh.client.patch(
        f"/v1/admin/staff/{me['id']}", headers=admin.headers, json={"role": "admin"}
    )
    assert promoted.json()["role"] == "admin"
    assert_problem(await sh.client.get("/v1/staff/me", headers=first), 401, "unauthenticated")
    # A session of the changed role (as a sign-in before the provider's change would have).
    staff = await sh.services.staff.by_email(me["email"])
    assert staff is not None
    assert staff.role == "admin"
    earlier = bearer(await sh.services.staff.open_session(staff.id))
    assert (await sh.client.get("/v1/admin/staff", headers=earlier)).status_code == 200

    again = await sso_sign_in(sh, idp, "changer")
    assert (await staff_me(sh, again))["id"] == me["id"]  # the same person...
    assert (await staff_me(sh, again))["role"] == "agent"  # ...with the provider's role
    assert_problem(await sh.client.get("/v1/admin/staff", headers=again), 403, "forbidden")
    # The sign-in that changed the role ended the session of the other role.
    assert_problem(await sh.client.get("/v1/staff/me", headers=earlier), 401, "unauthenticated")


async def test_a_disabled_person_cannot_sign_in_again(sh: Harness, idp: IdentityProvider) -> None:
    admin = await staff_member(sh, "admin")
    leaver = await sso_sign_in(sh, idp, "leaver")
    me = await staff_me(sh, leaver)
    disabled = await sh.client.patch(
        f"/v1/admin/staff/{me['id']}", headers=admin.headers, json={"disabled": True}
    )
    assert disabled.json()["disabled"] is True
    assert_problem(await sh.client.get("/v1/staff/me", headers=leaver), 401, "unauthenticated")
    in_a_browser = await sh.client.get(await at_provider(sh, idp, "leaver"), headers=HTML)
    assert in_a_browser.headers["location"] == "/agent#sso_error=invalid_credentials"
    from_a_client = await sh.client.get(await at_provider(sh, idp, "leaver"))
    assert_problem(from_a_client, 401, "invalid_credentials")


async def test_a_built_in_staff_members_address_is_not_taken_over(
    sh: Harness, idp: IdentityProvider
) -> None:
    await sh.services.staff.add(idp.users["twin"]["email"], "Built In", "agent", actor="test")
    in_a_browser = await sh.client.get(await at_provider(sh, idp, "twin"), headers=HTML)
    assert in_a_browser.headers["location"] == "/agent#sso_error=staff_exists"
    staff = await sh.services.staff.by_email(idp.users["twin"]["email"])
    assert staff is not None
    assert staff.source == "builtin"


# -- the flow's state and the one-time code ---------------------------------------------------


async def test_a_replayed_state_is_refused(sh: Harness, idp: IdentityProvider) -> None:
    callback = await at_provider(sh, idp, "agent1")
    assert (await sh.client.get(callback, headers=HTML)).status_code == 302
    replayed = await sh.client.get(callback)
    assert assert_problem(replayed, 400, "oidc_failed")["reason"] == "state"
    in_a_browser = await sh.client.get(callback, headers=HTML)
    assert in_a_browser.headers["location"] == "/agent#sso_error=state"


async def test_a_forged_state_is_refused(sh: Harness, idp: IdentityProvider) -> None:
    callback = await at_provider(sh, idp, "agent1")
    real_state = parse_qs(urlsplit(callback).query)["state"][0]
    forged = callback.replace(real_state, secrets.token_urlsafe(32))
    assert assert_problem(await sh.client.get(forged), 400, "oidc_failed")["reason"] == "state"
    # The real state from another browser (no flow cookie) is refused too.
    async with sh.new_client() as other_browser:
        stolen = await other_browser.get(callback)
    assert assert_problem(stolen, 400, "oidc_failed")["reason"] == "state"


async def test_the_one_time_code_works_once(sh: Harness, idp: IdentityProvider) -> None:
    code = await sso_code(sh, idp, "agent1")
    first = await sh.client.post("/v1/staff/auth/oidc/token", json={"code": code})
    assert first.status_code == 200, first.text
    again = await sh.client.post("/v1/staff/auth/oidc/token", json={"code": code})
    assert assert_problem(again, 400, "oidc_failed")["reason"] == "code"


async def test_customer_and_staff_flows_do_not_cross(
    harness_factory: HarnessFactory, idp: IdentityProvider
) -> None:
    both = await harness_factory(
        **staff_sso_settings(idp),
        oidc_issuer=idp.issuer,
        oidc_client_id=CUSTOMER_CLIENT["client_id"],
        oidc_client_secret=CUSTOMER_CLIENT["client_secret"],
        oidc_audience=idp.audience,
    )
    login = await both.client.get("/v1/auth/oidc/login")
    async with httpx.AsyncClient(timeout=10.0) as browser:
        callback = await idp.login(browser, login.headers["location"], "alice", IDP_PASSWORD)
    landed = await both.client.get(callback, headers=HTML)
    customer_code = urlsplit(landed.headers["location"]).fragment.removeprefix("sso=")
    refused = await both.client.post("/v1/staff/auth/oidc/token", json={"code": customer_code})
    assert assert_problem(refused, 400, "oidc_failed")["reason"] == "code"

    staff_code = await sso_code(both, idp, "coder")
    refused = await both.client.post("/v1/auth/oidc/token", json={"code": staff_code})
    assert assert_problem(refused, 400, "oidc_failed")["reason"] == "code"

    # A staff flow's state does not finish at the customers' callback (nor is it spent there).
    staff_callback = await at_provider(both, idp, "coder")
    at_customers = staff_callback.replace("/v1/staff/auth/oidc/", "/v1/auth/oidc/")
    assert at_customers != staff_callback
    refused = await both.client.get(at_customers)
    assert assert_problem(refused, 400, "oidc_failed")["reason"] == "state"
    assert (await both.client.get(staff_callback)).status_code == 302


# -- what the console is told -----------------------------------------------------------------


async def test_the_sign_in_methods_offer_single_sign_on(h: Harness, sh: Harness) -> None:
    on = await sh.client.get("/v1/staff/auth/methods")
    assert on.json() == {
        "password": True,
        "sso": {"display_name": "Corp SSO", "login_url": "/v1/staff/auth/oidc/login"},
    }
    off = await h.client.get("/v1/staff/auth/methods")
    assert off.json() == {"password": True, "sso": None}


async def test_without_a_provider_the_routes_are_404(h: Harness) -> None:
    assert_problem(await h.client.get("/v1/staff/auth/oidc/login"), 404, "oidc_not_configured")
    assert_problem(
        await h.client.get("/v1/staff/auth/oidc/callback?state=x&code=y"),
        404,
        "oidc_not_configured",
    )
    assert_problem(
        await h.client.post("/v1/staff/auth/oidc/token", json={"code": "x" * 43}),
        404,
        "oidc_not_configured",
    )


async def test_losing_every_support_group_ends_the_sessions_at_the_next_sign_in(
    harness_factory: HarnessFactory, sh: Harness, idp: IdentityProvider
) -> None:
    session = await sso_sign_in(sh, idp, "lead1")
    assert (await staff_me(sh, session))["role"] == "supervisor"
    # The company takes the person out of the support groups (here: the map no longer
    # names their group); their next sign-in is refused, and the session made before ends.
    regrouped = await harness_factory(
        **staff_sso_settings(idp, staff_oidc_role_map={"support-agents": "agent"})
    )
    refused = await regrouped.client.get(await at_provider(regrouped, idp, "lead1"))
    assert_problem(refused, 403, "not_staff")
    gone = await sh.client.get("/v1/staff/me", headers=session)
    assert_problem(gone, 401, "unauthenticated")
