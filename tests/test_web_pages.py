"""The web pages' HTTP side: headers, CSP, message files, and what the HTML may contain.
(What the pages do is tested in a real browser in test_browser.py.)"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import get_args

import pytest

from api.web import PAGES_DIR, STATIC_DIR
from service.models import AccountVisibleEventType
from tests.conftest import Harness

PAGES = [
    "/",
    "/signup",
    "/account",
    "/agent",
    "/staff/setup",
    "/admin",
    "/report",
    "/reset",
    "/reset/confirm",
]
DOCS = ["/docs", "/redoc", "/docs/oauth2-redirect"]
LANGUAGES = ["en", "sv"]


def _directives(csp: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.mark.parametrize("path", PAGES + DOCS)
async def test_pages_have_a_strict_csp_and_security_headers(h: Harness, path: str) -> None:
    response = await h.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = _directives(response.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    for values in csp.values():
        assert "*" not in values
        assert not any(value.startswith(("http:", "https:")) for value in values)
    if path != "/redoc":  # ReDoc's styled-components injects <style>; nothing else may
        assert csp["style-src"] == ["'self'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/app.css",
        "/static/js/app.js",
        "/static/i18n/sv.json",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/redoc/redoc.standalone.js",
    ],
)
async def test_static_files_are_served_with_revalidation(h: Harness, path: str) -> None:
    response = await h.client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    etag = response.headers["etag"]
    again = await h.client.get(path, headers={"if-none-match": etag})
    assert again.status_code == 304


async def test_javascript_modules_have_a_javascript_type(h: Harness) -> None:
    response = await h.client.get("/static/js/account.js")
    assert response.headers["content-type"].startswith(
        ("text/javascript", "application/javascript")
    )


async def test_a_missing_static_file_is_a_problem_document(h: Harness) -> None:
    response = await h.client.get("/static/js/nothing-here.js")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    traversal = await h.client.get("/static/..%2Fweb.py")
    assert traversal.status_code == 404


async def test_pages_stay_out_of_the_openapi_document(h: Harness) -> None:
    paths = (await h.client.get("/openapi.json")).json()["paths"]
    assert all(path.startswith(("/v1/", "/healthz", "/readyz")) for path in paths)
    for page in [*PAGES, *DOCS]:
        assert page not in paths


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_script = False
        self.inline_styles: list[str] = []
        self.urls: list[str] = []
        self.keys: set[str] = set()
        self.ids: set[str] = set()
        self.labels_for: set[str] = set()
        self.inputs: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts.append(values)
            self._in_script = True
        if tag == "style" or "style" in values:
            self.inline_styles.append(tag)
        if any(name.startswith("on") for name in values):
            self.inline_script = True
        for name in ("src", "href", "action", "spec-url"):
            if values.get(name):
                self.urls.append(str(values[name]))
        for name in ("data-i18n", "data-i18n-aria-label"):
            if values.get(name):
                self.keys.add(str(values[name]))
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "label" and values.get("for"):
            self.labels_for.add(str(values["for"]))
        if tag in ("input", "select", "textarea") and values.get("type") != "hidden":
            self.inputs.add(str(values.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def _parse(path: Path) -> _Collector:
    collector = _Collector()
    collector.feed(path.read_text(encoding="utf-8"))
    return collector


def _messages(lang: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text("utf-8"))
    return loaded


@pytest.mark.parametrize("page", sorted(p.name for p in PAGES_DIR.glob("*.html")))
def test_html_has_no_inline_code_and_nothing_from_elsewhere(page: str) -> None:
    parsed = _parse(PAGES_DIR / page)
    assert not parsed.inline_script
    assert parsed.inline_styles == []
    assert all(str(script.get("src") or "").startswith("/static/") for script in parsed.scripts)
    assert all(url.startswith("/") and not url.startswith("//") for url in parsed.urls), parsed.urls


@pytest.mark.parametrize(
    "page",
    ["signin.html", "signup.html", "account.html", "agent.html", "staff-setup.html", "admin.html"],
)
def test_every_input_has_a_label_and_every_text_a_message(page: str) -> None:
    parsed = _parse(PAGES_DIR / page)
    assert parsed.inputs <= parsed.labels_for, parsed.inputs - parsed.labels_for
    for lang in LANGUAGES:
        assert parsed.keys <= set(_messages(lang)), (lang, parsed.keys - set(_messages(lang)))


def test_both_languages_have_the_same_messages_and_placeholders() -> None:
    english, swedish = _messages("en"), _messages("sv")
    assert set(english) == set(swedish)
    for key, text in english.items():
        assert text.strip(), key
        assert swedish[key].strip(), key
        placeholders = set(re.findall(r"\{(\w+)\}", text))
        assert placeholders == set(re.findall(r"\{(\w+)\}", swedish[key])), key


def test_message_keys_used_by_the_scripts_exist() -> None:
    used: set[str] = set()
    for script in (STATIC_DIR / "js").glob("*.js"):
        used |= set(re.findall(r"""\bt\(\s*["']([\w.-]+)["']""", script.read_text("utf-8")))
    assert used, "the scripts call t() with literal keys"
    for lang in LANGUAGES:
        assert used <= set(_messages(lang)), (lang, used - set(_messages(lang)))


def test_button_labels_are_the_agreed_words() -> None:
    english, swedish = _messages("en"), _messages("sv")
    agreed = {
        "signin.submit": ("Sign in", "Logga in"),
        "account.sign-out": ("Sign out", "Logga ut"),
        "pin.open": ("Support PIN", "Support-PIN"),
        "pin.generate": ("Generate PIN", "Generera PIN"),
        "pin.ok": ("OK", "OK"),
        "agent.verify": ("Verify", "Verifiera"),
    }
    for key, (en, sv) in agreed.items():
        assert (english[key], swedish[key]) == (en, sv)


def test_tokens_never_go_to_local_storage_or_urls() -> None:
    for script in (STATIC_DIR / "js").glob("*.js"):
        text = script.read_text("utf-8")
        assert "localStorage" not in text, script.name
        assert "document.cookie" not in text, script.name
        assert not re.search(r"[?&](token|access_token|key|pin)=", text), script.name


def test_every_event_type_of_the_api_has_a_line_in_both_languages() -> None:
    for lang in LANGUAGES:
        messages = _messages(lang)
        missing = [
            kind for kind in get_args(AccountVisibleEventType) if f"event.{kind}" not in messages
        ]
        assert missing == [], (lang, missing)
