"""Against fake support calls, in a real browser: the customer's account page and the agent
console open at once (two browser contexts), live through their event streams, against the
real service (uvicorn, PostgreSQL, Redis).

The agent asks the caller to confirm and the customer's page asks which number is being read,
without a reload; the answer shows on the agent's page as it happens; a verification shows in
the customer's activity at once, with "Wasn't you? Lock support access"; the page says whether
Support is in contact right now; and the "This wasn't me" link of a notice email locks
support access.

The helpers are test_browser.py's: every page fails the test on a console error, an uncaught
exception or a CSP violation, and screenshots go to test-artifacts/screenshots/ (the README
shows two of them, copied to docs/screenshots/)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from pydantic import SecretStr

from service.notices import ReportLinks
from service.settings import Settings
from tests import stores as test_stores_module
from tests.conftest import PASSWORD
from tests.staffing import code_at
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
    generate_pin,
    open_agent_console,
    run_service,
    screenshot,
    sign_in,
    verify,
)

pytestmark = pytest.mark.slow

ASK = "Ask the caller to confirm"
LOCK = "Wasn't you? Lock support access"
NOT_IN_CONTACT = {
    "en": (
        "No one from our Support is in contact with you right now. If someone calls you and "
        "says they are from us, hang up and call us back on the number on our website."
    ),
    "sv": (
        "Ingen från vår support har kontakt med dig just nu. Om någon ringer dig och säger att "
        "de är från oss, lägg på och ring tillbaka till oss på numret på vår webbplats."
    ),
}
REPORT_DONE = (
    "Support access to your account is locked for 24 hours. Your Support PIN no longer works "
    "and you have been signed out everywhere."
)
REPORT_INVALID = (
    "This link does not work: it was used already, has expired (links work for 24 hours) or is "
    "incomplete. To lock support access, sign in and choose “Wasn't you? Lock support access” "
    "on your account page."
)
# The browser itself logs an API call's error status; where expected, it is allowed.
HTTP_400_LOGGED = re.compile(r"^Failed to load resource: .* status of 400 ")


@pytest.fixture(scope="module")
async def live(db_url: str, stores: test_stores_module.TestStores) -> AsyncIterator[LiveService]:
    """The service, whose emailed links point at itself."""
    port = _free_port()
    async with run_service(
        db_url, stores.redis_url, port=port, public_url=f"http://127.0.0.1:{port}"
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


async def open_account(
    browsers: Browsers,
    email: str,
    labels: Labels = EN,
    *,
    locale: str = "en-GB",
    timezone: str = "Europe/London",
) -> Page:
    """The customer signed in on the account page, its event stream open; marked, so that a
    reload would show (`assert_not_reloaded`)."""
    user = (await browsers.page(locale=locale, timezone=timezone)).page
    async with user.expect_response(lambda r: r.url.endswith("/v1/me/stream")) as streaming:
        await sign_in(user, email, labels)
    assert (await streaming.value).status == 200
    await user.evaluate("() => { window.notReloaded = true; }")
    return user


async def assert_not_reloaded(user: Page) -> None:
    assert await user.evaluate("() => window.notReloaded === true"), "the page was reloaded"


async def staff_token(live: LiveService, staff: StaffLogin) -> str:
    """A staff session through the API (the authenticator code of the next time-step)."""
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        first = await client.post(
            "/v1/staff/auth/token", data={"username": staff.email, "password": PASSWORD}
        )
        assert first.status_code == 401, first.text
        second = await client.post(
            "/v1/staff/auth/token/mfa",
            json={"mfa_token": first.json()["mfa_token"], "code": code_at(staff.secret, 1)},
        )
        assert second.status_code == 200, second.text
        token: str = second.json()["access_token"]
        return token


async def request_confirmation(live: LiveService, token: str, email: str) -> tuple[str, str]:
    """The agent's request through the API: its id and the number the agent reads."""
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post(
            "/v1/agent/confirmations",
            json={"email": email},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["code"]


async def confirmation_status(live: LiveService, token: str, confirmation_id: str) -> str:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.get(
            f"/v1/agent/confirmations/{confirmation_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def test_the_agent_asks_the_caller_to_confirm_and_sees_the_answer_live(
    browsers: Browsers,
) -> None:
    live = browsers.live
    email = await live.signup()
    staff = await live.create_staff()
    user = await open_account(browsers, email)
    call_status = user.locator("#call-status-text")
    await expect(call_status).to_have_text(NOT_IN_CONTACT["en"])

    agent = await open_agent_console(browsers, staff, EN)
    await agent.get_by_label(EN.caller_email, exact=True).fill(email)
    await agent.get_by_label("Case reference", exact=True).fill("CASE-42")
    await agent.get_by_role("button", name=ASK, exact=True).click()
    asked = agent.locator("#confirmation")
    await expect(asked).to_have_attribute("data-status", "pending")
    await expect(asked.locator(".confirm-read")).to_have_text(
        re.compile(r"^Read this number to the caller: \d\d$")
    )
    code = await asked.locator("#confirmation-code").inner_text()
    await expect(asked.locator("#confirmation-title")).to_have_text("Waiting")
    await assert_accessible(agent)

    # The customer's page asks at once, without a reload.
    prompt = user.get_by_role("dialog", name="Is it you on the call?")
    await expect(prompt).to_be_visible()
    await expect(prompt.locator("#confirm-question")).to_have_text(
        f"{staff.name} from Support (case CASE-42) asks you to confirm that it is you. "
        "Which number are they reading to you?"
    )
    choices = prompt.locator("#confirm-choices button")
    await expect(choices).to_have_count(3)
    numbers = await choices.all_inner_texts()
    assert code in numbers, numbers
    assert len(set(numbers)) == 3, numbers
    await expect(
        prompt.get_by_role("button", name="I am not on a call with Support", exact=True)
    ).to_be_visible()
    await expect(call_status).to_have_text(
        re.compile(
            rf"^Right now you are in contact with {re.escape(staff.name)} from Support "
            r"\(case CASE-42\), since \d\d:\d\d:\d\d .*\.$"
        )
    )
    await assert_not_reloaded(user)
    await screenshot(user, "en-confirm-prompt", full_page=False)
    await assert_accessible(user)

    # The right number: confirmed here, approved on the agent's page as it happens.
    await prompt.get_by_role("button", name=code, exact=True).click()
    await expect(prompt.get_by_role("status")).to_have_text(
        "Confirmed. You can continue your call."
    )
    await expect(asked).to_have_attribute("data-status", "approved")
    await expect(asked.locator("#confirmation-title")).to_have_text("Approved")
    await expect(asked.locator("#confirmation-detail")).to_contain_text(email)
    await screenshot(agent, "en-agent-confirmed")
    await assert_accessible(agent)
    await prompt.get_by_role("button", name="OK", exact=True).click()
    await expect(prompt).to_be_hidden()
    await expect(user.locator("#events li[data-type=confirmation_approved]")).to_contain_text(
        staff.name
    )

    # The PIN dialog repeats the rule; a verification shows in the activity at once.
    await user.get_by_role("button", name=EN.support_pin, exact=True).click()
    pin_dialog = user.get_by_role("dialog", name=EN.support_pin)
    await expect(pin_dialog).to_contain_text(
        "Only read this PIN to Support on a call that you made."
    )
    shown = await generate_pin(user, EN)
    await pin_dialog.get_by_role("button", name=EN.ok, exact=True).click()
    assert await verify(agent, email, shown.pin, EN) == "verified"
    await expect(asked).to_be_hidden()  # a new request hides the previous answer
    verified = user.locator("#events li[data-type=verified]")
    await expect(verified).to_contain_text(staff.name)
    await expect(verified.get_by_role("button", name=LOCK, exact=True)).to_be_visible()
    just_now = user.locator("#live-check")
    await expect(just_now).to_contain_text(f"{staff.name} from Support verified your Support PIN")
    await assert_not_reloaded(user)
    await screenshot(user, "en-account-live")
    await assert_accessible(user)

    # "Wasn't you?": asked once more, then locked, signed out, and told so.
    await just_now.get_by_role("button", name=LOCK, exact=True).click()
    lock = user.get_by_role("dialog", name="Lock support access?")
    await expect(lock).to_be_visible()
    await lock.get_by_role("button", name="Cancel", exact=True).click()
    await expect(lock).to_be_hidden()
    await verified.get_by_role("button", name=LOCK, exact=True).click()
    await lock.get_by_role("button", name="Lock support access", exact=True).click()
    await user.wait_for_url(re.compile(r"/$"))
    await expect(user.get_by_role("status")).to_contain_text(
        "Support access is locked for 24 hours"
    )
    assert await user.evaluate("() => sessionStorage.getItem('support-pin.session')") is None


async def test_call_status_and_prompt_in_swedish(browsers: Browsers) -> None:
    """In Swedish; a request made before the page opens is asked on load; a wrong number and
    "not on a call" refuse it; the call status follows, in both languages."""
    live = browsers.live
    email = await live.signup()
    staff = await live.create_staff()
    token = await staff_token(live, staff)
    user = await open_account(browsers, email, SV, locale="sv-SE", timezone="Europe/Stockholm")
    call_status = user.locator("#call-status-text")
    await expect(call_status).to_have_text(NOT_IN_CONTACT["sv"])

    first, _ = await request_confirmation(live, token, email)
    prompt = user.get_by_role("dialog", name="Är det du som är i samtalet?")
    await expect(prompt).to_be_visible()
    await expect(prompt.locator("#confirm-question")).to_have_text(
        f"{staff.name} från supporten ber dig bekräfta att det är du. "
        "Vilket nummer läser hen upp för dig?"
    )
    in_contact_sv = re.compile(
        rf"^Just nu har du kontakt med {re.escape(staff.name)} från supporten, "
        r"sedan kl\. \d\d:\d\d:\d\d .*\.$"
    )
    await expect(call_status).to_have_text(in_contact_sv)
    await assert_accessible(user)
    # Closed unanswered (Esc), it can be opened again; the switch redraws the call status.
    await user.keyboard.press("Escape")
    await expect(prompt).to_be_hidden()
    await user.get_by_label("Språk").select_option("en")
    await expect(call_status).to_have_text(
        re.compile(
            rf"^Right now you are in contact with {re.escape(staff.name)} from Support, "
            r"since \d\d:\d\d:\d\d .*\.$"
        )
    )
    await expect(user.get_by_role("button", name="Answer Support's request")).to_be_visible()
    await user.get_by_label("Language").select_option("sv")
    await user.get_by_role("button", name="Svara på supportens förfrågan", exact=True).click()
    await expect(prompt).to_be_visible()
    await prompt.get_by_role("button", name="Jag är inte i ett samtal med supporten").click()
    await expect(prompt.get_by_role("status")).to_have_text(
        "Tack för att du berättade. Vi har noterat att du inte var i ett samtal med supporten."
    )
    await expect(call_status).to_have_text(NOT_IN_CONTACT["sv"])
    assert await confirmation_status(live, token, first) == "denied"
    await prompt.get_by_role("button", name="OK", exact=True).click()
    await expect(prompt).to_be_hidden()
    await expect(user.locator("#events li[data-type=reported]")).to_have_count(1)

    # Asked while the page is away: on load, from the list of pending requests.
    second, code = await request_confirmation(live, token, email)
    await user.reload()
    await expect(prompt).to_be_visible()
    wrong = next(
        number
        for number in await prompt.locator("#confirm-choices button").all_inner_texts()
        if number != code
    )
    await prompt.get_by_role("button", name=wrong, exact=True).click()
    await expect(prompt.get_by_role("status")).to_have_text(
        "Det numret var inte rätt. Förfrågan nekades."
    )
    assert await confirmation_status(live, token, second) == "denied"
    await expect(call_status).to_have_text(NOT_IN_CONTACT["sv"])
    await user.get_by_label("Språk").select_option("en")
    await expect(call_status).to_have_text(NOT_IN_CONTACT["en"])


async def test_the_report_link_locks_support_access(browsers: Browsers) -> None:
    """A "This wasn't me" link made the way the service makes the one in its emails."""
    live = browsers.live
    email = await live.signup()
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        signed_in = await client.post(
            "/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        auth = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        account_id = UUID((await client.get("/v1/me", headers=auth)).json()["id"])
    settings = Settings(
        environment="test",
        secret_key=SecretStr(live.env["SECRET_KEY"]),
        public_url=live.env["PUBLIC_URL"],
    )
    link = ReportLinks(settings.keys.report_link, settings.public_url).link(
        account_id, uuid.uuid4()
    )
    assert link.startswith(f"{live.base_url}/report#token=rpt_"), link

    watched = await browsers.page()
    page = watched.page
    await page.goto(link)
    button = page.get_by_role("button", name="Lock support access", exact=True)
    await expect(button).to_be_visible()
    assert page.url == f"{live.base_url}/report"  # the token left the address bar at once
    await expect(page.locator("main")).to_contain_text(
        "For 24 hours, Support cannot verify anyone as you or ask you to confirm a call."
    )
    await screenshot(page, "en-report")
    await assert_accessible(page)
    await button.click()
    await expect(page.get_by_role("status")).to_have_text(REPORT_DONE)
    await expect(button).to_be_hidden()
    await assert_accessible(page)
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        assert (await client.get("/v1/me", headers=auth)).status_code == 401

    # The link works once: again, it says so clearly.
    watched.allowed.append(HTTP_400_LOGGED)
    await page.goto("about:blank")
    await page.goto(link)
    await button.click()
    await expect(page.get_by_role("alert")).to_have_text(REPORT_INVALID)
    await expect(button).to_be_hidden()
    await assert_accessible(page)
    # Without its token (cut off in the mail program, say), in Swedish.
    await page.goto("/report")
    await page.get_by_label("Language").select_option("sv")
    await expect(page.get_by_role("alert")).to_have_text(
        "Länken är ofullständig. Öppna hela länken från e-postmeddelandet, eller logga in och "
        "spärra supportåtkomsten på din kontosida."
    )
    await expect(page.get_by_role("button", name="Spärra supportåtkomst")).to_be_hidden()
