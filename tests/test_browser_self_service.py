"""Customers manage their own account in the web pages, in a real browser (Chromium through
Playwright) against the real service (uvicorn, PostgreSQL, Redis) and a real SMTP server.

The account page, top to bottom: the Support card (call status and the Support PIN button)
within the first screen of a phone, the activity list, Security (password change, two-factor
set-up with its QR code and recovery codes, passkeys through Chromium's virtual
authenticator), sign-out with the Support PIN button again, and deleting the account. The
password reset from the sign-in page through the email's link; the PIN dialog by keyboard
alone; and axe-core on every page.

The pages are served at http://localhost:PORT: WebAuthn wants a domain as its relying party
id, and an IP address is none. The helpers are test_browser.py's: every page fails the test
on a console error, an uncaught exception or a CSP violation."""

from __future__ import annotations

import base64
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pyotp
import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Page, async_playwright, expect

from service.mfa import qr_svg
from tests import stores as test_stores_module
from tests.conftest import PASSWORD
from tests.mailbox import Inbox, eventually
from tests.staffing import code_at
from tests.test_browser import (
    CHROMIUM_ARGS,
    EN,
    SV,
    WCAG_AA,
    Browsers,
    LiveService,
    Watched,
    _ensure_chromium,
    _free_port,
    run_service,
    screenshot,
    sign_in,
)

pytestmark = pytest.mark.slow

NEW_PASSWORD = "a brand new passphrase for the web"
# The browser itself logs an API call's error status; where a test expects one, it is allowed.
LOGGED_ERROR_STATUS = re.compile(r"^Failed to load resource: .* status of (400|401|403|422) ")
PHONE: dict[str, Any] = {"width": 375, "height": 667, "mobile": True}
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) for the service's emails, shared by this module."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
async def live(
    db_url: str, stores: test_stores_module.TestStores, smtp_server: tuple[Inbox, int]
) -> AsyncIterator[LiveService]:
    """The service, its pages at http://localhost:PORT (a valid WebAuthn relying party id),
    its emails to the SMTP server above, with room for the many PINs of the phone test."""
    _, smtp_port = smtp_server
    port = _free_port()
    async with run_service(
        db_url,
        stores.redis_url,
        port=port,
        public_url=f"http://localhost:{port}",
        smtp_url=f"smtp://127.0.0.1:{smtp_port}",
        rate_limit_pin_issue_per_account="100 per 10 minutes",
        rate_limit_account_create_per_address="1000/hour",
    ) as service:
        yield LiveService(f"http://localhost:{port}", service.env)


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


async def assert_no_serious_findings(page: Page) -> None:
    """No serious or critical WCAG 2.1 A/AA finding of axe-core (once the page has its words)."""
    await expect(page.locator("html")).not_to_have_class(re.compile(r"\bi18n-pending\b"))
    results = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA
    )
    findings = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"])
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert findings == [], f"{page.url}\n" + "\n".join(findings)


async def api_token(live: LiveService, email: str, password: str = PASSWORD) -> str:
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post(
            "/v1/auth/token", data={"username": email, "password": password}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def signed_in_page(
    browsers: Browsers, email: str, *, labels: Any = EN, locale: str = "en-GB", **size: Any
) -> Watched:
    watched = await browsers.page(locale=locale, **size)
    await sign_in(watched.page, email, labels)
    return watched


async def field_error(page: Page, field_id: str, text: str) -> None:
    """The field is marked invalid, described by its error, and that error says `text`."""
    field = page.locator(f"#{field_id}")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_have_attribute("aria-describedby", re.compile(rf"\b{field_id}-error\b"))
    await expect(page.locator(f"#{field_id}-error")).to_have_text(text)
    await expect(field).to_have_accessible_description(re.compile(re.escape(text)))


# -- password ------------------------------------------------------------------------------


async def test_password_change_with_its_errors_beside_the_fields(browsers: Browsers) -> None:
    email = await browsers.live.signup()
    watched = await signed_in_page(browsers, email)
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    security = page.locator("#security")
    current = security.get_by_label("Current password", exact=True)
    new = security.get_by_label("New password", exact=True)
    change = security.get_by_role("button", name="Change password", exact=True)

    # What the form can tell itself: both fields, each with its own words.
    await change.click()
    await field_error(page, "current-password", "Enter your current password.")
    await field_error(page, "new-password", "The new password needs at least 12 characters.")
    await expect(current).to_be_focused()

    # The API's problem details: a wrong current password is the current password's error...
    await current.fill("not my password at all")
    await new.fill(NEW_PASSWORD)
    await change.click()
    await field_error(page, "current-password", "The current password is not right.")
    await expect(current).to_be_focused()
    await expect(new).not_to_have_attribute("aria-invalid", "true")
    await expect(new).to_have_attribute("aria-describedby", "new-password-hint")
    # ...in the page's language, redrawn by the switch.
    await page.get_by_label("Language").select_option("sv")
    await expect(page.locator("#current-password-error")).to_have_text(
        "Det nuvarande lösenordet stämmer inte."
    )
    await expect(security.get_by_label("Nuvarande lösenord", exact=True)).to_be_visible()
    await assert_no_serious_findings(page)
    await screenshot(page, "sv-account-password-error", full_page=False)
    await page.get_by_label("Språk").select_option("en")

    # ...and a refused new password is the new password's, with the rule it broke.
    await current.fill(PASSWORD)
    await new.fill("aaaaaaaaaaaaaaaa")
    await change.click()
    await field_error(
        page,
        "new-password",
        "That password repeats itself too much. Choose one that is harder to guess.",
    )
    await expect(current).not_to_have_attribute("aria-invalid", "true")

    await new.fill(NEW_PASSWORD)
    await change.click()
    await expect(security.locator("#password-done")).to_have_text(
        "Your password is changed. You have been signed out on your other devices."
    )
    await expect(new).not_to_have_attribute("aria-invalid", "true")
    await expect(current).to_have_value("")
    await expect(page.locator("#events li[data-type=password_changed]")).to_have_count(1)

    # The new password signs in; the old one no longer does.
    await page.get_by_role("button", name=EN.sign_out, exact=True).click()
    await page.wait_for_url(re.compile(r"/$"))
    await page.get_by_label(EN.email, exact=True).fill(email)
    await page.get_by_label(EN.password, exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=EN.sign_in, exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    await page.get_by_label(EN.password, exact=True).fill(NEW_PASSWORD)
    await page.get_by_role("button", name=EN.sign_in, exact=True).click()
    await page.wait_for_url("**/account")
    await expect(page.locator("#account-email")).to_have_text(email)


def reset_link(inbox: Inbox, address: str) -> str | None:
    for message in inbox.to(address):
        if message["Subject"] == "Reset your password":
            body = message.get_body(("plain",))
            assert isinstance(body, EmailMessage)
            found = re.search(r"http\S+/reset/confirm#token=prt_[A-Za-z0-9_-]+", body.get_content())
            assert found is not None, body.get_content()
            return found.group(0)
    return None


async def test_a_password_reset_from_the_sign_in_page(
    browsers: Browsers, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp_server
    email = await browsers.live.signup()
    watched = await browsers.page()
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    await page.goto("/")
    await page.get_by_role("link", name="Forgot password?", exact=True).click()
    await page.wait_for_url("**/reset")
    email_field = page.get_by_label(EN.email, exact=True)
    await expect(email_field).to_be_focused()
    send = page.get_by_role("button", name="Send the link", exact=True)
    await email_field.fill("not an address")
    await send.click()
    await field_error(page, "email", "Enter your whole email address, like name@example.com.")
    await email_field.fill(email)
    await send.click()
    await expect(page.get_by_role("status")).to_have_text(
        f"If an account has the address {email}, we have sent it a link. It works once, for "
        "30 minutes. No email? Check your spam folder, or send the link again."
    )
    await expect(email_field).not_to_have_attribute("aria-invalid", "true")
    await screenshot(page, "en-reset")

    link = await eventually(lambda: reset_link(inbox, email))
    assert link.startswith(f"{browsers.live.base_url}/reset/confirm#token=prt_"), link
    await page.goto(link)
    password = page.get_by_label("New password", exact=True)
    await expect(password).to_be_focused()
    assert page.url == f"{browsers.live.base_url}/reset/confirm"  # the token left at once
    submit = page.get_by_role("button", name="Set the new password", exact=True)
    await password.fill("too short")
    await submit.click()
    await field_error(page, "new-password", "The new password needs at least 12 characters.")
    # A refused password leaves the link usable.
    await password.fill("abcdefghijklmnop")
    await submit.click()
    await field_error(
        page,
        "new-password",
        "That password is a simple sequence (like 1234 or qwerty). "
        "Choose one that is harder to guess.",
    )
    await screenshot(page, "en-reset-confirm")
    await assert_no_serious_findings(page)
    await password.fill(NEW_PASSWORD)
    await submit.click()
    await page.wait_for_url(re.compile(r"/$"))
    await expect(page.get_by_role("status")).to_have_text(
        "Your password is changed. Sign in with your new password."
    )
    await page.get_by_label(EN.email, exact=True).fill(email)
    await page.get_by_label(EN.password, exact=True).fill(NEW_PASSWORD)
    await page.get_by_role("button", name=EN.sign_in, exact=True).click()
    await page.wait_for_url("**/account")
    await expect(page.locator("#events li[data-type=password_reset]")).to_have_count(1)

    # The link works once: again, it says so, and offers a new one (in Swedish too).
    await page.goto("about:blank")
    await page.goto(link)
    await page.get_by_label("New password", exact=True).fill("another fine passphrase")
    await page.get_by_role("button", name="Set the new password", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        "This link does not work: it was used already, has expired (links work for 30 "
        "minutes) or a newer link replaced it. Ask for a new one."
    )
    await page.get_by_label("Language").select_option("sv")
    await expect(page.get_by_role("alert")).to_contain_text("Länken fungerar inte")
    await page.get_by_role("link", name="Be om en ny länk", exact=True).click()
    await page.wait_for_url("**/reset")
    await expect(page.get_by_role("button", name="Skicka länken", exact=True)).to_be_visible()


# -- two-factor sign-in --------------------------------------------------------------------


def svg_of(data_uri: str) -> str:
    head, _, data = data_uri.partition(",")
    assert head.startswith("data:image/svg+xml"), head
    if head.endswith(";base64"):
        return base64.b64decode(data).decode()
    return urllib.parse.unquote(data)


async def test_two_factor_set_up_from_the_page_and_sign_in_with_it(browsers: Browsers) -> None:
    email = await browsers.live.signup()
    watched = await signed_in_page(browsers, email)
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    security = page.locator("#security")
    await expect(security.locator("#mfa-state")).to_have_text(re.compile(r"^Off\."))
    await security.get_by_role("button", name="Set up two-factor sign-in", exact=True).click()

    # The QR code is the authenticator URI; the test's "app" reads its secret from it.
    qr = security.get_by_role("img", name="QR code to scan with your authenticator app")
    await expect(qr).to_be_visible()
    uri = await security.get_by_role(
        "link", name="Open in an authenticator app on this device"
    ).get_attribute("href")
    assert uri is not None
    assert uri.startswith("otpauth://totp/"), uri
    assert svg_of(await qr.get_attribute("src") or "") == qr_svg(uri)
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    shown_key = (await security.locator("#mfa-secret").inner_text()).replace(" ", "")
    assert shown_key == totp.secret
    code = security.get_by_label("Code from your authenticator app", exact=True)
    await expect(code).to_be_focused()
    await screenshot(page, "en-account-two-factor-set-up", full_page=False)
    await assert_no_serious_findings(page)

    now = time.time()
    near = {totp.at(now + step * 30) for step in (-1, 0, 1)}
    wrong = next(c for c in (f"{n:06d}" for n in range(123456, 123470)) if c not in near)
    await code.fill(wrong)
    turn_on = security.get_by_role("button", name="Turn on two-factor sign-in", exact=True)
    await turn_on.click()
    await field_error(
        page,
        "mfa-code",
        "That code is not right, or it has already been used. Check it and try again.",
    )
    await code.fill(totp.now())
    await turn_on.click()

    # The recovery codes, shown once, with Copy and Download.
    codes_box = security.locator("#recovery")
    await expect(codes_box.get_by_role("heading", name="Your recovery codes")).to_be_focused()
    codes = await codes_box.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10, codes
    assert len(set(codes)) == 10, codes
    await codes_box.get_by_role("button", name="Copy", exact=True).click()
    await expect(codes_box.get_by_role("status")).to_have_text("Copied.")
    assert await page.evaluate("() => navigator.clipboard.readText()") == "\n".join(codes)
    async with page.expect_download() as downloading:
        await codes_box.get_by_role("button", name="Download", exact=True).click()
    download = await downloading.value
    assert download.suggested_filename == "support-pin-recovery-codes.txt"
    saved = await download.path()
    assert all(code_ in saved.read_text("utf-8") for code_ in codes)
    await screenshot(page, "en-account-recovery-codes", full_page=False)
    await assert_no_serious_findings(page)
    await codes_box.get_by_role("button", name="I have saved them", exact=True).click()
    await expect(codes_box).to_be_hidden()
    await expect(security.locator("#mfa-state")).to_have_text("On. Recovery codes left: 10.")
    await expect(page.locator("#events li[data-type=mfa_enabled]")).to_have_count(1)

    # Signing in now asks for a code (the next time-step's: each step's code works once).
    await page.get_by_role("button", name=EN.sign_out, exact=True).click()
    await page.wait_for_url(re.compile(r"/$"))
    await page.get_by_label(EN.email, exact=True).fill(email)
    await page.get_by_label(EN.password, exact=True).fill(PASSWORD)
    await page.get_by_role("button", name=EN.sign_in, exact=True).click()
    step = page.get_by_label("Authenticator or recovery code", exact=True)
    await expect(step).to_be_focused()
    await step.fill(totp.at(time.time() + 30))
    await page.get_by_role("button", name=EN.sign_in, exact=True).click()
    await page.wait_for_url("**/account")
    await expect(page.locator("#account-email")).to_have_text(email)
    await expect(page.locator("#mfa-state")).to_have_text("On. Recovery codes left: 10.")

    # A recovery code makes new ones (shown once again) and turns it off.
    manage = page.get_by_label("Authenticator or recovery code", exact=True)
    await manage.fill(codes[0])
    await page.get_by_role("button", name="New recovery codes", exact=True).click()
    await expect(page.locator("#recovery-codes li")).to_have_count(10)
    fresh = await page.locator("#recovery-codes li").all_inner_texts()
    await page.get_by_role("button", name="I have saved them", exact=True).click()
    await manage.fill(fresh[0])
    await page.get_by_role("button", name="Turn off two-factor sign-in", exact=True).click()
    await expect(page.locator("#mfa-done")).to_have_text("Two-factor sign-in is off.")
    await expect(page.locator("#mfa-state")).to_have_text(re.compile(r"^Off\."))


# -- passkeys ------------------------------------------------------------------------------


async def test_a_passkey_added_on_the_page_then_used_to_sign_in(browsers: Browsers) -> None:
    email = await browsers.live.signup()
    watched = await browsers.page()
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    added = await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    authenticator = added["authenticatorId"]
    await sign_in(page, email, EN)
    passkeys = page.locator("#security")
    name = passkeys.get_by_label("Name for the new passkey", exact=True)
    add = passkeys.get_by_role("button", name="Add a passkey", exact=True)
    await add.click()
    await field_error(page, "passkey-name", "Give the passkey a name.")
    await name.fill("Work laptop")
    await add.click()
    await expect(passkeys.locator("#passkeys-done")).to_have_text(
        "The passkey Work laptop is added. You can sign in with it now."
    )
    listed = passkeys.locator("#passkeys li")
    await expect(listed).to_have_count(1)
    await expect(listed).to_contain_text("Work laptop")
    await expect(listed).to_contain_text("not used yet")
    credentials = await cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1
    assert credentials["credentials"][0]["isResidentCredential"] is True
    await screenshot(page, "en-account-passkeys", full_page=False)
    await assert_no_serious_findings(page)

    # The same device again: the browser says it has one already.
    await name.fill("Same laptop")
    await add.click()
    await expect(passkeys.locator("#passkeys-error")).to_have_text(
        "This device already has a passkey for your account."
    )

    # Signed out, the passkey signs in: no email, no password.
    await page.get_by_role("button", name=EN.sign_out, exact=True).click()
    await page.wait_for_url(re.compile(r"/$"))
    await assert_no_serious_findings(page)
    await page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
    await page.wait_for_url("**/account")
    await expect(page.locator("#account-email")).to_have_text(email)
    await expect(listed).to_contain_text("last used")

    # Removed, it signs in no more.
    await passkeys.get_by_role("button", name="Remove the passkey Work laptop", exact=True).click()
    await expect(passkeys.locator("#passkeys-done")).to_have_text(
        "The passkey Work laptop is removed."
    )
    await expect(listed).to_have_count(0)
    await expect(passkeys.locator("#passkeys-empty")).to_be_visible()
    await expect(page.locator("#events li[data-type=passkey_removed]")).to_have_count(1)
    await page.get_by_role("button", name=EN.sign_out, exact=True).click()
    await page.wait_for_url(re.compile(r"/$"))
    await page.get_by_role("button", name="Sign in with a passkey", exact=True).click()
    await expect(page.get_by_role("alert")).to_have_text(
        "That passkey was not accepted. It may have been removed from your account: sign in "
        "with your password instead."
    )
    assert page.url.endswith("/")


# -- the account page's order, on a phone ----------------------------------------------------


async def test_the_support_card_comes_first_on_a_phone(browsers: Browsers) -> None:
    """With 30 events, the Support card and its button are on the first screen of a 375-px
    phone (667 px high), in both languages; the activity list shows ten, then all."""
    live = browsers.live
    email = await live.signup()
    token = await api_token(live, email)
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        for _ in range(30):
            issued = await client.post(
                "/v1/me/support-pin", headers={"Authorization": f"Bearer {token}"}
            )
            assert issued.status_code == 201, issued.text
    for labels, locale in ((EN, "en-GB"), (SV, "sv-SE")):
        page = (await signed_in_page(browsers, email, labels=labels, locale=locale, **PHONE)).page
        card = page.locator("#support")
        button = card.get_by_role("button", name=labels.support_pin, exact=True)
        await expect(page.locator("#call-status-text")).not_to_be_empty()
        await expect(page.locator("#events li")).to_have_count(10)
        await page.evaluate("() => window.scrollTo(0, 0)")
        for part in (card, button):
            box = await part.bounding_box()
            assert box is not None
            assert box["y"] + box["height"] <= 667, (labels, box)
            assert box["x"] >= 0, (labels, box)
            assert box["x"] + box["width"] <= 375, (labels, box)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await screenshot(page, f"{locale[:2]}-phone-account-top", full_page=False)

        # Top to bottom: Support, activity, Security, sign-out and the button again, deletion.
        order = await page.evaluate(
            """() => ["#support", "#events", "#security", "#sign-out", "#open-pin-again",
                      "#delete-open"]
                .map((s) => document.querySelector(s).getBoundingClientRect().top)"""
        )
        assert order == sorted(order), order
        again = page.locator("#open-pin-again")
        await expect(again).to_contain_text(labels.support_pin)
        await expect(again).to_have_accessible_name(
            re.compile(rf"^{re.escape(labels.support_pin)}\b")
        )

        show_all = page.locator("#events-all")
        await expect(show_all).to_have_attribute("aria-expanded", "false")
        await show_all.tap()
        await expect(page.locator("#events li")).to_have_count(30)
        await expect(show_all).to_have_attribute("aria-expanded", "true")
        await show_all.tap()
        await expect(page.locator("#events li")).to_have_count(10)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL)
        await assert_no_serious_findings(page)
    await screenshot(page, "sv-phone-account")


# -- the Support PIN dialog ------------------------------------------------------------------


async def tab_to(page: Page, element_id: str, *, backwards: bool = False) -> None:
    """Presses Tab (or Shift+Tab) until the element has focus."""
    for _ in range(60):
        if await page.evaluate("() => document.activeElement?.id") == element_id:
            return
        await page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


async def verify_with_api(live: LiveService, email: str, pin: str) -> str:
    """A staff member (set up with the CLI) verifies the PIN through the API; their name."""
    staff = await live.create_staff()
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        first = await client.post(
            "/v1/staff/auth/token", data={"username": staff.email, "password": PASSWORD}
        )
        second = await client.post(
            "/v1/staff/auth/token/mfa",
            json={"mfa_token": first.json()["mfa_token"], "code": code_at(staff.secret, 1)},
        )
        assert second.status_code == 200, second.text
        checked = await client.post(
            "/v1/agent/verifications",
            json={"email": email, "pin": pin},
            headers={"Authorization": f"Bearer {second.json()['access_token']}"},
        )
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is True, checked.text
    return staff.name


async def test_the_pin_dialog_by_keyboard_alone(browsers: Browsers) -> None:
    live = browsers.live
    email = await live.signup()
    page = (await signed_in_page(browsers, email)).page
    dialog = page.get_by_role("dialog", name=EN.support_pin)
    pin = dialog.locator("#pin-value")

    await tab_to(page, "open-pin")
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_visible()
    # No PIN yet: generating one is the thing to do.
    await expect(dialog.get_by_role("button", name=EN.generate, exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(pin).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    ok = dialog.get_by_role("button", name=EN.ok, exact=True)
    await expect(ok).to_be_focused()
    first = await pin.inner_text()
    await page.keyboard.press("Enter")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#open-pin")).to_be_focused()

    # Opened with a live PIN: focus on "OK"; "Generate PIN" asks before replacing it.
    await page.keyboard.press("Enter")
    await expect(ok).to_be_focused()
    await expect(pin).to_have_text(first)
    await page.keyboard.press("Shift+Tab")
    await expect(dialog.get_by_role("button", name=EN.generate, exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    question = dialog.get_by_role("group", name="Replace the PIN you have?")
    await expect(question).to_be_visible()
    keep = question.get_by_role("button", name="Keep my PIN", exact=True)
    await expect(keep).to_be_focused()
    await screenshot(page, "en-pin-replace", full_page=False)
    await assert_no_serious_findings(page)
    await page.keyboard.press("Enter")  # keeps it
    await expect(question).to_be_hidden()
    await expect(ok).to_be_focused()
    await expect(pin).to_have_text(first)
    expires = await dialog.locator("#pin-expires").get_attribute("datetime")
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Enter")
    await expect(keep).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(question.get_by_role("button", name="Replace PIN", exact=True)).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(dialog.locator("#pin-expires")).not_to_have_attribute("datetime", expires or "")
    await expect(ok).to_be_focused()
    second = (await pin.inner_text()).replace(" ", "")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#open-pin")).to_be_focused()

    # After a reload the PIN is not shown again, but the dialog knows it works...
    await page.reload()
    await expect(page.locator("#account-email")).to_have_text(email)
    await tab_to(page, "open-pin-again")
    await page.keyboard.press("Enter")
    notice = dialog.locator("#pin-notice")
    await expect(notice).to_have_text(re.compile(r"^A support PIN is active until "))
    await expect(ok).to_be_focused()
    await expect(dialog.locator("#pin-panel")).to_be_hidden()
    await page.keyboard.press("Enter")
    await expect(page.locator("#open-pin-again")).to_be_focused()

    # ...and, from the service on every opening, what became of it: used.
    agent = await verify_with_api(live, email, second)
    await page.reload()
    await expect(page.locator("#account-email")).to_have_text(email)
    await tab_to(page, "open-pin")
    await page.keyboard.press("Enter")
    await expect(notice).to_have_text(
        re.compile(rf"^Your PIN was used: support agent {re.escape(agent)} verified it at ")
    )
    await expect(dialog.get_by_role("button", name=EN.generate, exact=True)).to_be_focused()
    # No live PIN: "Generate PIN" asks nothing.
    await page.keyboard.press("Enter")
    await expect(ok).to_be_focused()
    await expect(dialog.locator("#pin-replace")).to_be_hidden()
    await page.keyboard.press("Escape")


# -- deleting the account ------------------------------------------------------------------


async def test_deleting_the_account_behind_a_confirmation(browsers: Browsers) -> None:
    email = await browsers.live.signup()
    watched = await signed_in_page(browsers, email, labels=SV, locale="sv-SE")
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    opener = page.get_by_role("button", name="Radera kontot", exact=True)
    await opener.click()
    confirm = page.get_by_role("dialog", name="Radera ditt konto?")
    await expect(confirm).to_be_visible()
    password = confirm.get_by_label("Ditt lösenord", exact=True)
    await expect(password).to_be_focused()
    await confirm.get_by_role("button", name="Avbryt", exact=True).click()
    await expect(confirm).to_be_hidden()
    await expect(opener).to_be_focused()

    await opener.click()
    await password.fill("not the password")
    await confirm.get_by_role("button", name="Radera mitt konto", exact=True).click()
    await field_error(page, "delete-password", "Lösenordet stämmer inte.")
    await assert_no_serious_findings(page)
    await password.fill(PASSWORD)
    await confirm.get_by_role("button", name="Radera mitt konto", exact=True).click()
    await page.wait_for_url(re.compile(r"/$"))
    await expect(page.get_by_role("status")).to_have_text(
        "Ditt konto är raderat. Tack för att du använde Support-PIN."
    )
    async with httpx.AsyncClient(base_url=browsers.live.base_url) as client:
        refused = await client.post(
            "/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
    assert refused.status_code == 401


# -- accessibility -------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_no_serious_accessibility_finding_on_any_page(browsers: Browsers, size: str) -> None:
    email = await browsers.live.signup()
    watched = await browsers.page(**(PHONE if size == "phone" else {}))
    # The report page without a token, and the staff pages' own session checks, answer 401.
    watched.allowed.append(LOGGED_ERROR_STATUS)
    page = watched.page
    pages = [
        ("/", "#email"),
        ("/signup", "#email"),
        ("/reset", "#email"),
        ("/reset/confirm#token=prt_AAAAAAAAAAAAAAAAAAAAAAAA", "#new-password"),
        ("/reset/confirm", "#new-link"),
        ("/agent", "#staff-email"),
        ("/admin", "main"),
        ("/staff/setup", "main"),
        ("/report", "main"),
    ]
    for path, ready in pages:
        await page.goto(path)
        await expect(page.locator(ready).first).to_be_visible()
        await assert_no_serious_findings(page)
        assert await page.evaluate(NO_SIDEWAYS_SCROLL), path
    await sign_in(page, email, EN)
    await expect(page.locator("#call-status-text")).not_to_be_empty()
    await assert_no_serious_findings(page)
    await page.get_by_label("Language").select_option("sv")
    await expect(page.locator("html")).to_have_attribute("lang", "sv")
    await assert_no_serious_findings(page)
    assert await page.evaluate(NO_SIDEWAYS_SCROLL)
    await screenshot(page, f"sv-account-{size}")
    # The dialogs too.
    await page.get_by_role("button", name=SV.support_pin, exact=True).click()
    await expect(page.get_by_role("dialog", name=SV.support_pin)).to_be_visible()
    await assert_no_serious_findings(page)
    await page.keyboard.press("Escape")
    await page.get_by_role("button", name="Radera kontot", exact=True).click()
    await expect(page.get_by_role("dialog", name="Radera ditt konto?")).to_be_visible()
    await assert_no_serious_findings(page)
