"""Sign-in through the company's OpenID provider in a real browser: Debian's Chromium (headless,
Playwright's async API) on the sign-in page of the real service (uvicorn, PostgreSQL, Redis),
and the real test provider (tests/idp.py) whose sign-in form it fills in.

The helpers are test_browser.py's: every page fails the test on a console error, an uncaught
exception or a CSP violation, and screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests import stores as test_stores_module
from tests.idp import DEFAULT_USERS, IDP_PASSWORD, IdentityProvider
from tests.test_browser import (
    CHROMIUM_ARGS,
    EN,
    SV,
    Browsers,
    LiveService,
    _ensure_chromium,
    _free_port,
    assert_accessible,
    generate_pin,
    run_service,
    screenshot,
)

pytestmark = pytest.mark.slow

CLIENT_ID = "support-pin-web"
CLIENT_SECRET = "browser-oidc-client-secret"  # the test provider's client
PROVIDER = "Acme ID"
EN_BUTTON = f"Sign in with {PROVIDER}"
SV_BUTTON = f"Logga in med {PROVIDER}"
STATE_MESSAGE = {
    "en": "The sign-in took too long or was started in another window. Please try again.",
    "sv": "Inloggningen tog för lång tid eller påbörjades i ett annat fönster. Försök igen.",
}
CODE_MESSAGE = "This sign-in link has already been used or has expired. Please sign in again."

# The database is shared by the whole run (and kept between runs): the provider's people get
# login names (their `sub`) and addresses of their own, one per test that signs in.
RUN = uuid.uuid4().hex[:10]
PEOPLE = {role: f"{role}-{RUN}" for role in ("pin", "only-provider")}


def _people() -> dict[str, dict[str, Any]]:
    template = DEFAULT_USERS["alice"]
    return {
        login: {**template, "email": f"{login}@example.com", "name": login.title()}
        for login in PEOPLE.values()
    }


@dataclass(frozen=True)
class Ports:
    both: int  # password and provider
    provider_only: int  # PASSWORD_SIGNIN=false


@pytest.fixture(scope="module")
def ports() -> Ports:
    """Known before the provider starts: its client lists the services' callback URLs."""
    both = _free_port()
    provider_only = _free_port()
    while provider_only == both:
        provider_only = _free_port()
    return Ports(both, provider_only)


@pytest.fixture(scope="module")
def idp(ports: Ports) -> Iterator[IdentityProvider]:
    client = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [
            f"http://127.0.0.1:{port}/v1/auth/oidc/callback"
            for port in (ports.both, ports.provider_only)
        ],
    }
    with IdentityProvider.start(users=_people(), clients=[client]) as provider:
        yield provider


def _oidc_settings(idp: IdentityProvider) -> dict[str, str]:
    return {
        "oidc_issuer": idp.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_audience": idp.audience,
        "oidc_display_name": PROVIDER,
    }


@pytest.fixture(scope="module")
async def live(
    db_url: str, stores: test_stores_module.TestStores, idp: IdentityProvider, ports: Ports
) -> AsyncIterator[LiveService]:
    """The service with both ways to sign in, shared by this module's tests."""
    async with run_service(
        db_url, stores.redis_url, port=ports.both, **_oidc_settings(idp)
    ) as service:
        yield service


@pytest.fixture(scope="module")
async def provider_only(
    db_url: str, stores: test_stores_module.TestStores, idp: IdentityProvider, ports: Ports
) -> AsyncIterator[LiveService]:
    """The service with PASSWORD_SIGNIN=false: the provider is the only way in."""
    async with run_service(
        db_url,
        stores.redis_url,
        port=ports.provider_only,
        password_signin="false",
        **_oidc_settings(idp),
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


async def sign_in_at_provider(
    page: Page, idp: IdentityProvider, login: str, button: str = EN_BUTTON
) -> None:
    """From the sign-in page on screen: the provider's button, its form, and back."""
    # The test provider has no icon; the browser's 404 for it would fail the console watch.
    await page.route(f"{idp.issuer}/favicon.ico", lambda route: route.fulfill(status=204))
    await page.get_by_role("link", name=button, exact=True).click()
    await page.wait_for_url(re.compile(r"/interaction/"))
    await expect(page.get_by_role("heading", name="Test IdP sign in")).to_be_visible()
    await page.locator("input[name=login]").fill(login)
    await page.locator("input[name=password]").fill(IDP_PASSWORD)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await page.wait_for_url("**/account")


async def test_sign_in_with_the_provider_and_get_a_pin(
    browsers: Browsers, idp: IdentityProvider
) -> None:
    login = PEOPLE["pin"]
    page = (await browsers.page()).page
    await page.goto("/")
    link = page.get_by_role("link", name=EN_BUTTON, exact=True)
    await expect(link).to_be_visible()
    assert await link.get_attribute("href") == "/v1/auth/oidc/login?next=/account"
    # The provider's button comes first, then "or", then the password form, as before.
    await expect(page.locator("#sso-or")).to_have_text("or")
    await expect(page.get_by_label(EN.email, exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Create an account")).to_be_visible()
    link_box, form_box = await link.bounding_box(), await page.locator("#email").bounding_box()
    assert link_box is not None
    assert form_box is not None
    assert link_box["y"] < form_box["y"]
    await screenshot(page, "en-signin-provider")
    await assert_accessible(page)

    await sign_in_at_provider(page, idp, login)
    await expect(page.locator("#account-email")).to_have_text(f"{login}@example.com")
    # The one-time code went from the address bar before the page used it.
    assert "sso" not in page.url
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.session')") is not None
    await page.get_by_role("button", name=EN.support_pin, exact=True).click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    shown = await generate_pin(page, EN)
    await expect(dialog.locator("#pin-value")).to_have_text(f"{shown.pin[:3]} {shown.pin[3:]}")


async def test_the_button_speaks_swedish(browsers: Browsers) -> None:
    swedish = (await browsers.page(locale="sv-SE")).page
    await swedish.goto("/")
    await expect(swedish.get_by_role("link", name=SV_BUTTON, exact=True)).to_be_visible()
    await expect(swedish.locator("#sso-or")).to_have_text("eller")
    await screenshot(swedish, "sv-signin-provider")
    # The language switch redraws the button (its words are made by the script).
    english = (await browsers.page(locale="en-US")).page
    await english.goto("/")
    await expect(english.get_by_role("link", name=EN_BUTTON, exact=True)).to_be_visible()
    await english.get_by_label("Language").select_option("sv")
    await expect(english.get_by_role("link", name=SV_BUTTON, exact=True)).to_be_visible()
    await english.get_by_label("Språk").select_option("en")
    await expect(english.get_by_role("link", name=EN_BUTTON, exact=True)).to_be_visible()


async def test_without_password_sign_in_only_the_provider_is_offered(
    browsers: Browsers, provider_only: LiveService, idp: IdentityProvider
) -> None:
    page = (await browsers.page()).page
    await page.goto(f"{provider_only.base_url}/")
    link = page.get_by_role("link", name=EN_BUTTON, exact=True)
    await expect(link).to_be_visible()
    for hidden in ("#password-step", "#code-step", "#sso-or", "#signup-footer"):
        await expect(page.locator(hidden)).to_be_hidden()
    await expect(page.get_by_label(EN.email, exact=True)).to_be_hidden()
    await expect(page.get_by_role("link", name="Create an account")).to_be_hidden()
    await screenshot(page, "en-signin-provider-only")
    await assert_accessible(page)

    # The sign-up page says where accounts come from, and leads back to sign-in.
    await page.goto(f"{provider_only.base_url}/signup")
    await expect(page.locator("#password-off-text")).to_have_text(
        f"Accounts here are not made with a password: sign in with {PROVIDER}, "
        "and your account is made the first time you do."
    )
    await expect(page.locator("#signup-form")).to_be_hidden()
    await assert_accessible(page)
    await page.get_by_role("link", name="Go to sign-in", exact=True).click()
    await page.wait_for_url(f"{provider_only.base_url}/")

    # And the provider's button signs in.
    login = PEOPLE["only-provider"]
    await sign_in_at_provider(page, idp, login)
    await expect(page.locator("#account-email")).to_have_text(f"{login}@example.com")


@pytest.mark.parametrize(("lang", "locale"), [("en", "en-GB"), ("sv", "sv-SE")])
async def test_a_forged_state_is_a_readable_message(
    browsers: Browsers, lang: str, locale: str
) -> None:
    page = (await browsers.page(locale=locale)).page
    await page.goto("/v1/auth/oidc/callback?state=forged&code=x")
    await expect(page.get_by_role("alert")).to_have_text(STATE_MESSAGE[lang])
    # Back on the sign-in page, without the fragment, with both ways to sign in.
    assert page.url == f"{browsers.live.base_url}/"
    button = EN_BUTTON if lang == "en" else SV_BUTTON
    await expect(page.get_by_role("link", name=button, exact=True)).to_be_visible()
    await expect(page.get_by_label((EN if lang == "en" else SV).email, exact=True)).to_be_visible()
    if lang == "en":
        await screenshot(page, "en-signin-provider-error")
        await assert_accessible(page)
        # The message follows a language switch.
        await page.get_by_label("Language").select_option("sv")
        await expect(page.get_by_role("alert")).to_have_text(STATE_MESSAGE["sv"])


async def test_a_used_or_unknown_code_is_a_readable_message(browsers: Browsers) -> None:
    watched = await browsers.page()
    # The exchange's 400 answer is logged by the browser itself; that one is expected.
    watched.allowed.append(re.compile(r"^Failed to load resource: .* status of 400 "))
    page = watched.page
    await page.goto("/#sso=" + "A" * 43)
    await expect(page.get_by_role("alert")).to_have_text(CODE_MESSAGE)
    assert page.url == f"{browsers.live.base_url}/"
    await expect(page.get_by_role("link", name=EN_BUTTON, exact=True)).to_be_visible()
    assert await page.evaluate("() => sessionStorage.getItem('support-pin.session')") is None
