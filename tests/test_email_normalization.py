"""One normalization of an email address at every entry (NFKC, IDNA, case folding), and
look-alike addresses refused at sign-up (UTS #39): service/emails.py."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import asyncpg
import pytest

from service import accounts, emails
from tests.conftest import PASSWORD, Harness, assert_problem

CYRILLIC_E = "\u0435"  # looks like Latin e
CYRILLIC_A = "\u0430"  # looks like Latin a


def hex_tag() -> str:
    return uuid.uuid4().hex[:10]


def digit_tag() -> str:
    """Digits only: they belong to no script, so they mix with Cyrillic as with Latin."""
    return f"{secrets.randbelow(10**12):012d}"


def fullwidth(text: str) -> str:
    """ASCII letters, digits and punctuation as their fullwidth forms (NFKC undoes them)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


# -- The function -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("ada@example.com", "ada@example.com"),
        (" \tada@example.com\u3000\n", "ada@example.com"),  # whitespace, ideographic too
        ("ＡＤＡ@example.com", "ada@example.com"),  # fullwidth letters (NFKC)
        ("ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ada@example.com"),  # fullwidth @ and dot
        ("Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
        ("Straße@example.com", "strasse@example.com"),  # case folding, not lower()
        ("STRASSE@example.com", "strasse@example.com"),
        ("ﬁle@example.com", "file@example.com"),  # ligature (NFKC)
        ("ada@BÜCHER.de", "ada@bücher.de"),  # IDNA: the canonical Unicode form
        ("ada@xn--bcher-kva.de", "ada@bücher.de"),  # the punycode spelling of the same
        ("ada@XN--BCHER-KVA.DE", "ada@bücher.de"),
        ("ada@faß.de", "ada@faß.de"),  # nontransitional IDNA keeps the domain's ß
        ("ada@example。com", "ada@example.com"),  # ideographic full stop (UTS #46)
        ("ꭰꭰ@example.com", "ᎠᎠ@example.com"),  # Cherokee folds to its capitals
        ("user+tag!#$%&'*/=?^_`{|}~-@example.com", "user+tag!#$%&'*/=?^_`{|}~-@example.com"),
        ("Δημήτρης@παράδειγμα.ελ", "δημήτρησ@παράδειγμα.ελ"),  # final sigma folds to σ
    ],
)
def test_normalize_email(raw: str, normalized: str) -> None:
    assert emails.normalize_email(raw) == normalized
    assert emails.normalize_email(normalized) == normalized
    # The name the rest of the service imports gives the same spelling.
    assert accounts.normalize_email(raw) == normalized


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@localhost",  # one name, no dot
        "ada@example.com.",
        "ada@1.2.3.4",
        "ada@example.test",  # special-use names (RFC 6761)
        "ada@mail.localhost",
        "ada@hidden.onion",
        "ada@[192.0.2.1]",
        "ada@exa_mple.com",
        "ada@-example.com",
        "ada@example..com",
        "a..b@example.com",
        ".ada@example.com",
        "ada.@example.com",
        "a b@example.com",
        '"ada"@example.com',
        "a,b@example.com",
        "a@b@example.com",
        "ada\u200b@example.com",  # zero-width space
        "ada\ufe0f@example.com",  # variation selector
        "ada\x00@example.com",
        "\u0301ada@example.com",  # starts with a combining mark
        "a" * 65 + "@example.com",
        "ä" * 33 + "@example.com",  # 66 bytes
        "ada@" + "a" * 64 + ".com",
        "ada@" + ".".join(["a" * 60] * 5) + ".com",
    ],
)
def test_invalid_addresses_raise_a_value_error(raw: str) -> None:
    with pytest.raises(emails.InvalidEmailAddress) as raised:
        emails.normalize_email(raw)
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith("not a valid email address: ")
    if len(raw.strip()) > 3:  # the reason never repeats the input
        assert raw.strip() not in str(raised.value)
    # The lookup spelling never raises: it finds no account for such input.
    assert accounts.normalize_email(raw) == raw.strip()


def test_normalization_is_idempotent_over_the_bmp() -> None:
    for code_point in range(0x10000):
        if 0xD800 <= code_point <= 0xDFFF:
            continue
        try:
            once = emails.normalize_email(f"a{chr(code_point)}b@example.com")
        except emails.InvalidEmailAddress:
            continue
        assert emails.normalize_email(once) == once, hex(code_point)


@pytest.mark.parametrize(
    ("address", "mixed"),
    [
        ("ada@example.com", False),
        (f"ada@{CYRILLIC_E}xample.com", True),
        (f"{CYRILLIC_A}da@example.com", True),
        ("иван@example.com", False),  # Cyrillic local part, Latin domain: each is one script
        ("иван@пример.рф", False),
        ("иван@пример.com", False),  # domain labels are checked one by one
        ("田中taro@example.jp", False),  # Latin with Han: UTS #39 Highly Restrictive
        ("たなかtaro@例え.jp", False),
        ("ada@παράδειγμα.ελ", False),
        ("αda@example.com", True),  # Greek alpha among Latin letters
        ("ada@ex\u0430mple.com", True),
    ],
)
def test_mixed_script_confusables(address: str, mixed: bool) -> None:
    assert emails.mixes_confusable_scripts(emails.normalize_email(address)) is mixed


def test_skeletons_of_look_alikes_are_equal() -> None:
    skeleton = emails.email_skeleton
    assert skeleton(f"ada@{CYRILLIC_E}xample.com") == skeleton("ada@example.com")
    assert skeleton("расе@example.com") == skeleton("pace@example.com")  # all Cyrillic
    assert skeleton("ada@exarnple.com") == skeleton("ada@example.com")  # rn and m
    assert skeleton("ada@example.com") != skeleton("eve@example.com")


# -- Every entry ----------------------------------------------------------------------------


async def sign_up(h: Harness, email: str) -> Any:
    return await h.client.post("/v1/accounts", json={"email": email, "password": PASSWORD})


async def sign_in(h: Harness, email: str) -> Any:
    return await h.client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})


async def test_fullwidth_sign_up_signs_in_typed_plainly_and_back(h: Harness) -> None:
    tag = hex_tag()
    response = await sign_up(h, fullwidth(f"ADA-{tag.upper()}") + "@example.com")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"ada-{tag}@example.com"
    assert (await sign_in(h, f"ada-{tag}@example.com")).status_code == 200
    assert (await sign_in(h, fullwidth(f"ada-{tag}@example.com"))).status_code == 200

    other = hex_tag()
    assert (await sign_up(h, f"eve-{other}@example.com")).status_code == 201
    assert (await sign_in(h, fullwidth(f"EVE-{other.upper()}@EXAMPLE.COM"))).status_code == 200


@pytest.mark.parametrize(
    ("at_sign_up", "at_sign_in"),
    [("bücher.de", "xn--bcher-kva.de"), ("XN--BCHER-KVA.DE", "BÜCHER.de")],
)
async def test_unicode_domain_signs_in_with_either_spelling(
    h: Harness, at_sign_up: str, at_sign_in: str
) -> None:
    tag = hex_tag()
    response = await sign_up(h, f"ada-{tag}@{at_sign_up}")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"ada-{tag}@bücher.de"
    assert (await sign_in(h, f"ada-{tag}@{at_sign_in}")).status_code == 200
    assert (await sign_in(h, f"ada-{tag}@{at_sign_up}")).status_code == 200
    taken = await sign_up(h, f"ADA-{tag}@{at_sign_in}")
    assert_problem(taken, 409, "email_taken")


async def test_case_folding_sharp_s_and_capitals(h: Harness) -> None:
    tag = hex_tag()
    response = await sign_up(h, f"Straße-{tag}@example.com")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"strasse-{tag}@example.com"
    for spelling in (
        f"Straße-{tag}@example.com",  # exactly as at sign-up
        f"STRASSE-{tag.upper()}@EXAMPLE.COM",
        f"strasse-{tag}@example.com",
        f"STRAẞE-{tag}@example.com",  # capital sharp s
    ):
        assert (await sign_in(h, spelling)).status_code == 200, spelling
    assert_problem(await sign_up(h, f"STRASSE-{tag}@example.com"), 409, "email_taken")


async def test_surrounding_whitespace_is_not_part_of_the_address(h: Harness) -> None:
    tag = hex_tag()
    response = await sign_up(h, f"  ada-{tag}@example.com\t")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"ada-{tag}@example.com"
    assert (await sign_in(h, f"\u3000ada-{tag}@example.com  ")).status_code == 200


async def test_cherokee_address_is_stored_folded(h: Harness, pg: asyncpg.Connection) -> None:
    # str.casefold maps Cherokee small letters to capitals, which PostgreSQL's lower() in a
    # UTF-8 locale maps back: the stored form must pass the table's check all the same.
    tag = digit_tag()
    response = await sign_up(h, f"ꭰꭱ{tag}@example.com")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == f"ᎠᎡ{tag}@example.com"
    assert (await sign_in(h, f"ꭰꭱ{tag}@example.com")).status_code == 200
    assert (await sign_in(h, f"ᎠᎡ{tag}@example.com")).status_code == 200
    skeleton = await pg.fetchval(
        "SELECT email_skeleton FROM accounts WHERE email = $1", f"ᎠᎡ{tag}@example.com"
    )
    assert skeleton == emails.email_skeleton(f"ᎠᎡ{tag}@example.com")


async def test_invalid_address_at_sign_up_is_422_on_the_email_field(h: Harness) -> None:
    for email in ("not-an-email", "ada@localhost", "a b@example.com", "ada@exa_mple.com"):
        problem = assert_problem(await sign_up(h, email), 422, "validation_error")
        [error] = problem["errors"]
        assert error["loc"] == ["body", "email"]
        assert error["type"] == "value_error"
        assert "not a valid email address" in error["msg"]
        assert email not in error["msg"]


# -- Look-alikes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    [
        f"ada-{{tag}}@{CYRILLIC_E}xample.com",
        f"{CYRILLIC_A}da-{{tag}}@example.com",
        "ada-{tag}@ex\u0430mple.com",
        "\u03b1da-{tag}@example.com",  # Greek alpha
    ],
)
async def test_mixed_script_look_alike_is_refused_on_the_email_field(
    h: Harness, email: str
) -> None:
    email = email.format(tag=hex_tag())
    problem = assert_problem(await sign_up(h, email), 422, "email_confusable")
    [error] = problem["errors"]
    assert error["loc"] == ["body", "email"]
    assert error["type"] == "email_confusable"
    assert email not in problem["detail"]
    # Nothing was created.
    assert_problem(await sign_in(h, email), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("existing", "look_alike"),
    [
        ("pace{tag}@example.com", "\u0440\u0430\u0441\u0435{tag}@example.com"),  # Cyrillic
        ("ada{tag}@cocoa.com", "ada{tag}@\u0441\u043e\u0441\u043e\u0430.com"),  # Cyrillic label
        ("ada{tag}@example.com", "ada{tag}@exarnple.com"),  # rn for m
        ("ada{tag}@example.com", "ada{tag}@examp1e.com"),  # digit one for l
    ],
)
async def test_look_alike_of_an_existing_address_is_answered_as_taken(
    h: Harness, existing: str, look_alike: str
) -> None:
    tag = digit_tag()
    existing, look_alike = existing.format(tag=tag), look_alike.format(tag=tag)
    assert (await sign_up(h, existing)).status_code == 201
    taken = await sign_up(h, existing.upper())
    refused = await sign_up(h, look_alike)
    assert_problem(taken, 409, "email_taken")
    assert_problem(refused, 409, "email_taken")
    assert refused.json() == taken.json()
    assert refused.headers.keys() - {"x-request-id", "date"} == taken.headers.keys() - {
        "x-request-id",
        "date",
    }
    assert_problem(await sign_in(h, look_alike), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "username",
    [
        f"ada@{CYRILLIC_E}xample.com",
        "not-an-email",
        "ada@localhost",
        "ada@",
        "@",
        "a" * 300 + "@example.com",
        "ada@exa_mple.com",
    ],
)
async def test_sign_in_with_a_look_alike_or_invalid_address_finds_no_account(
    h: Harness, username: str
) -> None:
    unknown = await sign_in(h, f"nobody-{hex_tag()}@example.com")
    response = await sign_in(h, username)
    assert_problem(response, 401, "invalid_credentials")
    assert response.json() == unknown.json()


async def test_sign_in_with_the_look_alike_of_an_account_finds_no_account(h: Harness) -> None:
    tag = hex_tag()
    email = await h.signup(f"ada-{tag}@example.com")
    assert (await sign_in(h, email)).status_code == 200
    assert_problem(
        await sign_in(h, f"ada-{tag}@{CYRILLIC_E}xample.com"), 401, "invalid_credentials"
    )


# -- Agent verification -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at_sign_up", "at_verification"),
    [
        ("ada-{tag}@example.com", fullwidth("ADA-{TAG}@EXAMPLE.COM")),
        ("Straße-{tag}@bücher.de", " strasse-{tag}@XN--BCHER-KVA.de "),
        ("ada-{tag}@xn--bcher-kva.de", "Ada-{tag}@Bücher.de"),
    ],
    ids=["fullwidth", "sharp-s-and-punycode", "unicode-domain"],
)
async def test_agent_verifies_an_account_by_another_spelling(
    h: Harness, at_sign_up: str, at_verification: str
) -> None:
    tag = hex_tag()
    email = await h.signup(at_sign_up.format(tag=tag))
    headers = {"Authorization": f"Bearer {await h.sign_in(email)}"}
    account_id = (await h.client.get("/v1/me", headers=headers)).json()["id"]
    _, agent = await h.agent()
    pin = await h.issue_pin(headers)
    # Formatted after widening: the tag goes in as plain ASCII, NFKC makes both alike.
    other_spelling = at_verification.replace("｛ＴＡＧ｝", "{TAG}").format(tag=tag, TAG=tag.upper())
    result = await h.verify(agent, other_spelling, pin)
    assert result["valid"] is True
    assert result["account_id"] == account_id


@pytest.mark.parametrize(
    "email",
    [f"ada-{{tag}}@{CYRILLIC_E}xample.com", "ada-{tag}", "ada-{tag}@localhost", "@@@"],
)
async def test_agent_verification_of_a_look_alike_or_invalid_address_is_not_valid(
    h: Harness, email: str
) -> None:
    tag = hex_tag()
    account = await h.signup(f"ada-{tag}@example.com")
    headers = {"Authorization": f"Bearer {await h.sign_in(account)}"}
    _, agent = await h.agent()
    pin = await h.issue_pin(headers)
    result = await h.verify(agent, email.format(tag=tag), pin)
    assert result["valid"] is False
    assert result["account_id"] is None
    assert result["verified_at"] is None
    # The PIN still works for the real address.
    assert (await h.verify(agent, account, pin))["valid"] is True
