"""Support staff in a real browser: the set-up page, the agent console's sign-in (built-in with
an authenticator code, and single sign-on through the real test provider, tests/idp.py) and
the admin page, against the real service (uvicorn, PostgreSQL, Redis).

The helpers are test_browser.py's: every page fails the test on a console error, an uncaught
exception or a CSP violation, and screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from tests import stores as test_stores_module
from tests.conftest import PASSWORD
from tests.idp import DEFAULT_USERS, IDP_PASSWORD, IdentityProvider
from tests.test_browser import (
    CHROMIUM_ARGS,
    EN,
    SV,
    Browsers,
    Labels,
    LiveService,
    StaffLogin,
    _ensure_chromium,
    _free_port,
    assert_accessible,
    run_service,
    screenshot,
    sign_in,
    sign_in_staff,
)

pytestmark = pytest.mark.slow

CLIENT_ID = "support-pin-staff"
CLIENT_SECRET = "browser-staff-client-secret"  # the test provider's client
PROVIDER = "Acme Workforce"
ROLE_MAP = {"support-agents": "agent", "support-admins": "admin"}
NOT_STAFF = "Your account has no support role here. Ask your administrator."
SESSION_ENDED = "Your session has ended. Please sign in again."
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"
# The browser itself logs an API call's error status (the first staff sign-in step always
# answers 401 mfa_required; refused passwords 400); those are expected where allowed.
HTTP_ERROR_LOGGED = re.compile(r"^Failed to load resource: .* status of (400|401|422) ")

# The database is shared by the whole run (and kept between runs), and a staff member's
# address is theirs alone: the provider's people get login names and addresses of this run.
RUN = uuid.uuid4().hex[:10]
PEOPLE = {"agent1": f"agent1-{RUN}", "outsider": f"outsider-{RUN}"}


def _people() -> dict[str, dict[str, Any]]:
    return {
        login: {**DEFAULT_USERS[template], "email": f"{login}@corp.example"}
        for template, login in PEOPLE.items()
    }


@pytest.fixture(scope="module")
def port() -> int:
    """Known before the provider starts: its client lists the service's callback URL."""
    return _free_port()


@pytest.fixture(scope="module")
def idp(port: int) -> Iterator[IdentityProvider]:
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"http://127.0.0.1:{port}/v1/staff/auth/oidc/callback"],
    }
    with IdentityProvider.start(users=_people(), clients=[client]) as provider:
        yield provider


@pytest.fixture(scope="module")
async def live(
    db_url: str, stores: test_stores_module.TestStores, idp: IdentityProvider, port: int
) -> AsyncIterator[LiveService]:
    """The service with staff single sign-on, whose set-up links point at itself."""
    async with run_service(
        db_url,
        stores.redis_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        staff_oidc_issuer=idp.issuer,
        staff_oidc_client_id=CLIENT_ID,
        staff_oidc_client_secret=CLIENT_SECRET,
        staff_oidc_scopes="openid email profile groups",
        staff_oidc_role_map=json.dumps(ROLE_MAP),
        staff_oidc_display_name=PROVIDER,
    ) as service:
        yield service


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(_ensure_chromium()), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@pytest.fixture
async def browsers(browser: Browser, live: LiveService) -> AsyncIterator[Browsers]:
    made = Browsers(browser, live)
    yield made
    for context in made.contexts:
        await context.close()
    for watched in made.watched:
        watched.assert_clean()


@dataclass(frozen=True)
class NewStaff:
    email: str
    name: str
    setup_link: str


async def add_staff(live: LiveService, role: str, name: str) -> NewStaff:
    """A staff member added with the CLI (`support-pin staff add`), not yet set up."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@corp.example"
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "support-pin"),
        *("staff", "add", email, "--name", name, "--role", role),
        env=live.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    link = out.decode().strip().splitlines()[-1]
    assert link.startswith(f"{live.base_url}/staff/setup#token=sst_"), link
    return NewStaff(email, name, link)


async def customer_pin(live: LiveService, email: str) -> str:
    """A fresh support PIN of a customer, made through the API."""
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        signed_in = await client.post(
            "/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        made = await client.post("/v1/me/support-pin", headers=auth)
    assert made.status_code in (200, 201), made.text
    pin: str = made.json()["pin"]
    return pin


async def staff_console(
    browsers: Browsers, staff: StaffLogin, labels: Labels = EN, **page: Any
) -> Page:
    """The agent console signed in as `staff` (built-in sign-in, second step included)."""
    watched = await browsers.page(**page)
    watched.allowed.append(HTTP_ERROR_LOGGED)
    console = watched.page
    await console.goto("/agent")
    await sign_in_staff(console, staff, labels)
    return console


async def sign_in_with_provider(page: Page, idp: IdentityProvider, login: str, button: str) -> None:
    """From the agent console's sign-in panel: the provider's button, its form, and back."""
    # The test provider has no icon; the browser's 404 for it would fail the console watch.
    await page.route(f"{idp.issuer}/favicon.ico", lambda route: route.fulfill(status=204))
    await page.get_by_role("link", name=button, exact=True).click()
    await page.wait_for_url(re.compile(r"/interaction/"))
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill(IDP_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url(re.compile(r"/agent$"))


async def test_an_agent_sets_up_signs_in_and_verifies_with_a_case(browsers: Browsers) -> None:
    live = browsers.live
    customer = await live.signup()
    pin = await customer_pin(live, customer)
    new = await add_staff(live, "agent", f"Agnes {RUN[:4]}")

    watched = await browsers.page()
    watched.allowed.append(HTTP_ERROR_LOGGED)
    page = watched.page
    await page.goto(new.setup_link)
    password = page.get_by_label("Password", exact=True)
    await expect(password).to_be_focused()
    # The link's secret went from the address bar before anything else.
    assert page.url == f"{live.base_url}/staff/setup"
    await assert_accessible(page)
    # The password rules are the customers': a refused one is a readable reason.
    await password.fill("aaaaaaaaaaaaaaaa")
    await page.get_by_role("button", name="Continue", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        "That password repeats itself too much. Choose one that is harder to guess."
    )
    await password.fill(PASSWORD)
    await page.get_by_role("button", name="Continue", exact=True).click()
    qr = page.get_by_role("img", name="QR code to scan with your authenticator app")
    await expect(qr).to_be_visible()
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
    assert (await qr.get_attribute("src") or "").startswith("data:image/svg+xml;")
    secret = (await page.locator("#secret").inner_text()).replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    assert (await page.locator("#otpauth-link").get_attribute("href") or "").startswith(
        "otpauth://totp/"
    )
    await screenshot(page, "en-staff-setup")
    await assert_accessible(page)
    totp = pyotp.TOTP(secret)
    await page.get_by_label("Code from your authenticator app", exact=True).fill(totp.now())
    await page.get_by_role("button", name="Finish set-up", exact=True).click()
    await expect(page.get_by_role("heading", name="You're set up")).to_be_visible()
    await expect(page.get_by_role("heading", name="You're set up")).to_be_focused()
    await assert_accessible(page)

    await page.get_by_role("link", name="Go to the agent console", exact=True).click()
    await page.wait_for_url("**/agent")
    await sign_in_staff(page, StaffLogin(new.email, new.name, secret), EN)
    await expect(page.locator("#staff-who")).to_have_text(f"Signed in as {new.name} (agent)")
    await expect(page.get_by_role("link", name="Administration")).to_be_hidden()
    await expect(page.get_by_label("Agent API key")).to_have_count(0)

    case = f"CASE-{RUN[:6]}"
    await page.get_by_label(EN.caller_email, exact=True).fill(customer)
    await page.get_by_label(EN.pin, exact=True).fill(pin)
    await page.get_by_label("Case reference", exact=True).fill(case)
    await page.get_by_role("button", name=EN.verify, exact=True).click()
    result = page.locator("#result")
    await expect(result).to_have_attribute("data-result", "verified")
    await expect(result.locator("#result-title")).to_have_text(EN.verified)
    await screenshot(page, "en-agent-staff")
    await assert_accessible(page)

    # A new check: the previous answer is gone the moment it starts, before its own answer.
    release = asyncio.Event()

    async def held(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/v1/agent/verifications", held)
    await page.get_by_label(EN.pin, exact=True).fill(pin)  # used: it will not verify again
    await page.get_by_role("button", name=EN.verify, exact=True).click()
    await expect(result).to_be_hidden()
    release.set()
    await expect(result).to_have_attribute("data-result", "not-verified")
    await expect(result).to_be_visible()
    await page.unroute("**/v1/agent/verifications")

    # The customer sees who checked, and for which case.
    account = (await browsers.page()).page
    await sign_in(account, customer, EN)
    await expect(account.locator("#events li[data-type=verified]")).to_contain_text(
        f"Verified by support agent {new.name} (case {case})"
    )
    await expect(account.locator("#events li[data-type=verify_failed]")).to_contain_text(
        f"Failed check by support agent {new.name} (case {case})"
    )

    # A session that ended on the server: the next call leads back to the sign-in panel.
    saved = await page.evaluate("() => sessionStorage.getItem('support-pin.staff-session')")
    token = json.loads(saved)["token"]
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        ended = await client.post(
            "/v1/staff/auth/logout", headers={"Authorization": f"Bearer {token}"}
        )
    assert ended.status_code == 204
    await page.get_by_label(EN.pin, exact=True).fill("123456")
    await page.get_by_role("button", name=EN.verify, exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(SESSION_ENDED)
    await expect(page.get_by_label(EN.email, exact=True)).to_be_visible()
    await expect(result).to_be_hidden()
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.staff-session')") is None


async def test_an_admin_manages_staff_keys_locks_and_the_audit_log(
    browsers: Browsers, tmp_path: Path
) -> None:
    live = browsers.live
    admin = await live.create_staff("admin", f"Ada {RUN[:4]}")
    customer = await live.signup()
    page = await staff_console(browsers, admin)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await expect(page.locator("#staff-who")).to_have_text(f"Signed in as {admin.name} (admin)")
    await page.get_by_role("link", name="Administration", exact=True).click()
    await page.wait_for_url("**/admin")
    staff_section = page.locator("#staff-section")
    await expect(staff_section.locator(f"tr[data-email='{admin.email}']")).to_be_visible()
    await assert_accessible(page)

    # A new staff member: the set-up link is shown once, and copies.
    sam = f"sam-{RUN}@corp.example"
    add = page.locator("#add-staff-form")
    await add.get_by_label("Email", exact=True).fill(sam)
    await add.get_by_label("Name", exact=True).fill("Sam Support")
    await add.get_by_label("Role", exact=True).select_option("supervisor")
    await add.get_by_role("button", name="Add", exact=True).click()
    link = page.locator("#setup-link")
    await expect(link).to_have_text(
        re.compile(rf"^{re.escape(live.base_url)}/staff/setup#token=sst_")
    )
    await expect(page.locator("#setup-link-text")).to_contain_text(f"Added {sam}.")
    await page.locator("#setup-link-box").get_by_role("button", name="Copy").click()
    await expect(staff_section.get_by_role("status")).to_have_text("Copied.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == await link.inner_text()
    row = staff_section.locator(f"tr[data-email='{sam}']")
    await expect(row).to_contain_text("Sam Support")
    await expect(row.get_by_label("Role of Sam Support")).to_have_value("supervisor")

    # Their role, after a confirmation; then disabled.
    await row.get_by_label("Role of Sam Support").select_option("agent")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Make Sam Support agent?")
    await dialog.get_by_role("button", name="Change role", exact=True).click()
    await expect(staff_section.get_by_role("status")).to_have_text(
        "Sam Support is now agent; their sessions have ended."
    )
    await expect(row.get_by_label("Role of Sam Support")).to_have_value("agent")
    await row.get_by_role("button", name="Disable Sam Support", exact=True).click()
    await expect(staff_section.get_by_role("status")).to_have_text(
        "Sam Support is disabled; their sessions have ended."
    )
    await expect(row).to_contain_text("Disabled")
    await expect(row.get_by_role("button", name="Enable Sam Support", exact=True)).to_be_focused()

    # An API key: shown once, then revoked after a confirmation.
    key_name = f"crm-{RUN}"
    keys_section = page.locator("#keys-section")
    await keys_section.get_by_label("Key name", exact=True).fill(key_name)
    await keys_section.get_by_label("Expires after (days)", exact=True).fill("30")
    await keys_section.get_by_role("button", name="Create key", exact=True).click()
    await expect(keys_section.locator("#new-key")).to_have_text(re.compile(r"^spa_\S+$"))
    key = await keys_section.locator("#new-key").inner_text()
    await expect(keys_section.locator("#new-key-text")).to_contain_text("shown only this once")
    key_row = keys_section.locator(f"tr[data-name='{key_name}']")
    await expect(key_row).to_have_attribute("data-state", "active")
    await screenshot(page, "en-admin")
    await assert_accessible(page)
    await key_row.get_by_role("button", name=f"Revoke {key_name}", exact=True).click()
    await expect(dialog).to_contain_text(f"Revoke the API key {key_name}?")
    await assert_accessible(page)
    await dialog.get_by_role("button", name="Revoke", exact=True).click()
    await expect(keys_section.get_by_role("status")).to_have_text(
        f"The API key {key_name} is revoked."
    )
    await expect(key_row).to_have_attribute("data-state", "revoked")
    await expect(key_row.get_by_role("button")).to_have_count(0)
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        refused = await client.post(
            "/v1/agent/verifications",
            headers={"Authorization": f"Bearer {key}"},
            json={"email": customer, "pin": "123456"},
        )
    assert refused.status_code == 401

    # Unlocking an account.
    unlock = page.locator("#unlock-section")
    await unlock.get_by_label("Account email", exact=True).fill(customer)
    await unlock.get_by_role("button", name="Unlock", exact=True).click()
    await expect(unlock.get_by_role("status")).to_have_text(
        f"Done. If an account has the address {customer}, it is unlocked."
    )

    # The audit log, by type; the key's revocation is there.
    audit = page.locator("#audit-section")
    await audit.get_by_label("Event type", exact=True).select_option("api_key_revoked")
    await audit.get_by_role("button", name="Search", exact=True).click()
    rows = audit.locator("#audit-rows tr")
    await expect(rows.first).to_be_visible()
    await expect(audit.locator(f"#audit-rows tr:has-text('{key_name}')")).to_have_count(1)
    types = set(await rows.evaluate_all("rows => rows.map(row => row.dataset.type)"))
    assert types == {"api_key_revoked"}, types
    await expect(audit.locator(f"#audit-rows tr:has-text('{key_name}')")).to_contain_text(
        admin.email
    )

    # Pages go on with the cursor (two rows a page here, to have several).
    async def two_a_page(route: Route) -> None:
        await route.continue_(url=route.request.url + "&limit=2")

    await page.route("**/v1/admin/audit?*", two_a_page)
    await audit.get_by_label("Event type", exact=True).select_option("")
    await audit.get_by_label("Actor", exact=True).fill(admin.email)
    await audit.get_by_role("button", name="Search", exact=True).click()
    await expect(audit.locator("#audit-page")).to_have_text("Page 1")
    await expect(rows).to_have_count(2)
    first_page = await rows.all_inner_texts()
    await audit.get_by_role("button", name="Next page", exact=True).click()
    await expect(audit.locator("#audit-page")).to_have_text("Page 2")
    await expect(rows).to_have_count(2)
    assert await rows.all_inner_texts() != first_page
    await page.unroute("**/v1/admin/audit?*")

    # The CSV of everything the filters match (all pages), saved as a file.
    await audit.get_by_label("Actor", exact=True).fill("")
    await audit.get_by_label("Event type", exact=True).select_option("api_key_revoked")
    async with page.expect_download() as download_info:
        await audit.get_by_role("button", name="Download CSV", exact=True).click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / "audit.csv"
    await download.save_as(saved)
    table = list(csv.reader(io.StringIO(saved.read_text("utf-8"))))
    assert table[0][:3] == ["id", "at", "type"]
    assert {row[2] for row in table[1:]} == {"api_key_revoked"}
    assert any(key_name in row for row in table[1:])


async def test_a_supervisor_sees_only_the_audit_log(browsers: Browsers) -> None:
    supervisor = await browsers.live.create_staff("supervisor", f"Sue {RUN[:4]}")
    page = await staff_console(browsers, supervisor)
    await expect(page.locator("#staff-who")).to_have_text(
        f"Signed in as {supervisor.name} (supervisor)"
    )
    await page.get_by_role("link", name="Administration", exact=True).click()
    await page.wait_for_url("**/admin")
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    for hidden in ("Staff", "API keys", "Unlock an account"):
        await expect(page.get_by_role("heading", name=hidden, exact=True)).to_be_hidden()
    await expect(page.locator("#audit-rows tr").first).to_be_visible()
    await assert_accessible(page)


async def test_the_admin_page_without_a_session_points_to_the_console(
    browsers: Browsers,
) -> None:
    page = (await browsers.page()).page
    await page.goto("/admin")
    await expect(page.locator("#signed-out-text")).to_have_text(
        "Sign in on the agent console first: this page uses that sign-in."
    )
    await expect(page.get_by_role("heading", name="Audit log")).to_be_hidden()
    await assert_accessible(page)
    await page.get_by_role("link", name="Go to the agent console", exact=True).click()
    await page.wait_for_url("**/agent")
    await expect(page.get_by_role("link", name=f"Sign in with {PROVIDER}")).to_be_visible()
    # Signed out, the console offers the provider and the built-in form, and nothing else.
    await expect(page.get_by_label(EN.email, exact=True)).to_be_visible()
    await expect(page.get_by_label(EN.caller_email, exact=True)).to_be_hidden()
    await screenshot(page, "en-agent-signin")
    await assert_accessible(page)


async def test_signing_out_of_the_console(browsers: Browsers) -> None:
    agent = await browsers.live.create_staff("agent")
    page = await staff_console(browsers, agent)
    await assert_accessible(page)
    await page.get_by_role("button", name=EN.sign_out, exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("You have signed out.")
    await expect(page.get_by_label(EN.email, exact=True)).to_be_focused()
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.staff-session')") is None
    await page.reload()
    await expect(page.get_by_label(EN.email, exact=True)).to_be_visible()


async def test_staff_pages_on_a_375_pixel_phone(browsers: Browsers) -> None:
    admin = await browsers.live.create_staff("admin")
    page = await staff_console(browsers, admin, width=375, height=740, mobile=True)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await assert_accessible(page)
    await screenshot(page, "phone-agent-staff")
    await page.goto("/admin")
    await expect(page.locator("#staff-rows tr").first).to_be_visible()
    await expect(page.locator("#audit-rows tr").first).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    # The wide tables scroll inside their own box, which the keyboard can reach.
    wraps = page.locator(".table-wrap:visible")
    assert await wraps.count() >= 2
    for index in range(await wraps.count()):
        box = await wraps.nth(index).bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= 375, box
    audit_wrap = page.locator("#audit-results .table-wrap")
    assert await audit_wrap.evaluate("box => box.scrollWidth > box.clientWidth")
    assert await audit_wrap.get_attribute("tabindex") == "0"
    await assert_accessible(page)
    await screenshot(page, "phone-admin")
    await page.get_by_label("Language").select_option("sv")
    await expect(page.get_by_role("heading", name="Personal", exact=True)).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await page.get_by_label("Språk").select_option("en")

    # The set-up page, and the console signed out, fit too.
    new = await add_staff(browsers.live, "agent", "Phone Person")
    await page.goto(new.setup_link)
    await expect(page.get_by_label("Password", exact=True)).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Continue", exact=True).click()
    await expect(page.locator("#qr")).to_be_visible()
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await assert_accessible(page)
    await screenshot(page, "phone-staff-setup")
    fresh = (await browsers.page(width=375, height=740, mobile=True)).page
    await fresh.goto("/agent")
    await expect(fresh.get_by_label(EN.email, exact=True)).to_be_visible()
    assert await fresh.evaluate(NO_SIDEWAYS_SCROLL)


async def test_swedish_on_the_staff_pages(browsers: Browsers) -> None:
    page = (await browsers.page(locale="en-US")).page
    await page.goto("/agent")
    await expect(page.get_by_role("link", name=f"Sign in with {PROVIDER}")).to_be_visible()
    await page.get_by_label("Language").select_option("sv")
    await expect(page.get_by_role("link", name=f"Logga in med {PROVIDER}")).to_be_visible()
    await expect(page.get_by_role("button", name=SV.sign_in, exact=True)).to_be_visible()
    await expect(page.get_by_label(SV.email, exact=True)).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "sv")

    # The choice holds in the tab: the other staff pages open in Swedish.
    await page.goto("/admin")
    await expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    await expect(page.get_by_role("link", name="Gå till handläggarvyn")).to_be_visible()
    new = await add_staff(browsers.live, "agent", "Svea Svensson")
    await page.goto(new.setup_link)
    await expect(
        page.get_by_role("heading", name="Kom igång med ditt personalkonto")
    ).to_be_visible()
    await expect(page.get_by_role("button", name="Fortsätt", exact=True)).to_be_visible()
    await screenshot(page, "sv-staff-setup")

    # Signed in, in Swedish, with the role in Swedish too.
    admin = await browsers.live.create_staff("admin", "Åsa Admin")
    swedish = await staff_console(browsers, admin, SV, locale="sv-SE")
    await expect(swedish.locator("#staff-who")).to_have_text(
        "Inloggad som Åsa Admin (administratör)"
    )
    await expect(swedish.get_by_label("Ärendereferens", exact=True)).to_be_visible()
    await swedish.get_by_role("link", name="Administration", exact=True).click()
    await swedish.wait_for_url("**/admin")
    for heading in ("Personal", "API-nycklar", "Lås upp ett konto", "Granskningslogg"):
        await expect(swedish.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    await screenshot(swedish, "sv-admin")


async def test_staff_single_sign_on(browsers: Browsers, idp: IdentityProvider) -> None:
    page = (await browsers.page()).page
    await page.goto("/agent")
    link = page.get_by_role("link", name=f"Sign in with {PROVIDER}", exact=True)
    assert await link.get_attribute("href") == "/v1/staff/auth/oidc/login"
    await sign_in_with_provider(page, idp, PEOPLE["agent1"], f"Sign in with {PROVIDER}")
    name = DEFAULT_USERS["agent1"]["name"]
    await expect(page.locator("#staff-who")).to_have_text(f"Signed in as {name} (agent)")
    # The one-time code went from the address bar before the page used it.
    assert page.url == f"{browsers.live.base_url}/agent"
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.staff-session')")
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.session')") is None
    await expect(page.get_by_label(EN.caller_email, exact=True)).to_be_visible()
    await assert_accessible(page)


@pytest.mark.parametrize(("lang", "locale"), [("en", "en-GB"), ("sv", "sv-SE")])
async def test_staff_single_sign_on_of_an_outsider(
    browsers: Browsers, idp: IdentityProvider, lang: str, locale: str
) -> None:
    page = (await browsers.page(locale=locale)).page
    await page.goto("/agent")
    button = f"Sign in with {PROVIDER}" if lang == "en" else f"Logga in med {PROVIDER}"
    await sign_in_with_provider(page, idp, PEOPLE["outsider"], button)
    message = (
        NOT_STAFF
        if lang == "en"
        else "Ditt konto har ingen supportroll här. Fråga din administratör."
    )
    await expect(page.get_by_role("alert")).to_have_text(message)
    assert page.url == f"{browsers.live.base_url}/agent"
    await expect(page.get_by_role("link", name=button, exact=True)).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.staff-session')") is None
    if lang == "en":
        await screenshot(page, "en-agent-not-staff")
        await assert_accessible(page)
        # The message follows a language switch.
        await page.get_by_label("Language").select_option("sv")
        await expect(page.get_by_role("alert")).to_have_text(
            "Ditt konto har ingen supportroll här. Fråga din administratör."
        )
