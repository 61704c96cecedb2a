"""New passwords: NIST SP 800-63B-4 §3.1.1.2 (common, repetitive, sequential, context words)."""

from __future__ import annotations

import random
import string
import time
import uuid
from typing import get_args

import pytest

from service.errors import PasswordRefused
from service.password_policy import (
    COMMON_PASSWORDS,
    PasswordReason,
    check_new_password,
    normalize_password,
    password_problem,
)
from tests.conftest import PASSWORD, Harness

EMAIL = "user-4f1c9a2b7d3e@example.com"


# The blocklist.


def test_the_blocklist_holds_the_common_passwords_normalized() -> None:
    assert len(COMMON_PASSWORDS) >= 100_000
    assert {"123456", "password", "qwerty", "iloveyou", "password1234"} <= COMMON_PASSWORDS
    assert "" not in COMMON_PASSWORDS
    assert all(entry == normalize_password(entry) for entry in COMMON_PASSWORDS)


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "Password1234",
        "PASSWORD1234",
        "ｐａｓｓｗｏｒｄ１２３４",  # fullwidth: the same password after NFKC
        "iloveyou1234",
        "dragon2024!!!",  # a common password with digits and symbols around it
        "!!monkey12345",
        "Summer2024!!",
    ],
)
def test_common_passwords_are_refused(password: str) -> None:
    assert password_problem(password, email=EMAIL) == "common"


# Repetitive and sequential strings: the whole password is judged.


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaaaa",
        "AAAAAAAAAAAA",
        "aaaaaaaaaaa!",
        "!aaaaaaaaaaa",
        "abcabcabcabc",
        "abcabcabcab1",
        "abababababab",
        "123123123123",
        "passwordpassword",
        "aaaabbbbcccc",
        "xyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxyxy",
    ],
)
def test_repetitive_passwords_are_refused(password: str) -> None:
    assert password_problem(password, email=EMAIL) == "repetitive"


@pytest.mark.parametrize(
    "password",
    [
        "123456789012",
        "987654321098",
        "abcdefghijkl",
        "ABCDEFGHIJKL",
        "zyxwvutsrqpo",
        "xyzabcdefghi",  # the alphabet wraps around
        "qwertyuiopas",  # the keyboard's top row runs on into the next
        "poiuytrewqlk",
        "azertyuiopqs",
        "1qaz2wsx3edc",
        "!@#$%^&*()_+",
        "abcdef123456",
        "qwerty123456",
        "abcdefghijk!",
    ],
)
def test_sequential_passwords_are_refused(password: str) -> None:
    assert password_problem(password, email=EMAIL) == "sequential"


# Context words.


@pytest.mark.parametrize(
    ("password", "email"),
    [
        ("my name is ada.lovelace!", "ada.lovelace@example.com"),
        ("ADA.LOVELACE rides again", "ada.lovelace@example.com"),
        ("adamant horse battery", "ada+shop@example.com"),  # the part before a +tag too
        ("Bob's long passphrase", "bob@example.org"),
    ],
)
def test_passwords_containing_the_emails_local_part_are_refused(password: str, email: str) -> None:
    assert password_problem(password, email=email) == "contains_email"


def test_local_parts_shorter_than_three_characters_are_not_context_words() -> None:
    assert password_problem("Bo is my good dog friend", email="bo@example.org") is None


@pytest.mark.parametrize(
    "password",
    [
        "my support pin is great",
        "SupportPin is great",
        "support-pin-horse-battery",
        "SUPPORT_PIN staple horse",
    ],
)
def test_passwords_containing_the_service_name_are_refused(password: str) -> None:
    assert password_problem(password, email=EMAIL) == "contains_service_name"


# What is accepted.


@pytest.mark.parametrize(
    "password",
    [
        PASSWORD,
        "correct horse battery staple",
        "nightingale river stone",
        "zebra velvet moonlight",
        "Tr0ub4dor&3 x horse",
        "hunter2-but-longer",  # tests/test_log_hygiene.py
        "bench-a3f9c02e17b4d6e8a0c9b2f1",  # bench/main.py's form
        "xkcd936 is a comic strip",
    ],
)
def test_strong_passwords_are_accepted(password: str) -> None:
    assert password_problem(password, email=EMAIL) is None


def test_random_passwords_like_the_tests_use_are_accepted() -> None:
    rng = random.Random(800_63)
    alphabet = string.ascii_letters + string.digits + "-_"
    for _ in range(500):
        password = "pw-" + "".join(rng.choice(alphabet) for _ in range(24))
        assert password_problem(password, email=f"hygiene-{uuid.uuid4().hex[:10]}@x.org") is None


def test_shape_problems_are_named_before_the_blocklist() -> None:
    # Also on the blocklist; "repetitive" and "sequential" tell the user more.
    assert {"aaaaaaaaaaaa", "123456789012"} <= COMMON_PASSWORDS
    assert password_problem("aaaaaaaaaaaa", email=EMAIL) == "repetitive"
    assert password_problem("123456789012", email=EMAIL) == "sequential"


def test_the_check_is_fast_on_the_longest_password() -> None:
    rng = random.Random(1024)
    longest = [
        "".join(rng.choice(string.printable[:94] + " ") for _ in range(1024)),
        "ab" * 512,
        ("abcdefghijklmnopqrstuvwxyz" * 40)[:1024],
    ]
    started = time.perf_counter()
    for password in longest:
        password_problem(password, email=EMAIL)
    assert time.perf_counter() - started < 0.5


def test_every_reason_has_an_english_message() -> None:
    assert set(PasswordRefused.messages) == set(get_args(PasswordReason))


def test_check_new_password_raises_a_problem_naming_the_reason() -> None:
    check_new_password(PASSWORD, email=EMAIL)  # accepted: no error
    with pytest.raises(PasswordRefused) as caught:
        check_new_password("password1234", email=EMAIL)
    error = caught.value
    assert (error.status, error.code, error.extra["reason"]) == (422, "password_refused", "common")
    assert error.detail == PasswordRefused.messages["common"]
    assert error.extra["errors"] == [
        {"loc": ["body", "password"], "msg": error.detail, "type": "password_common"}
    ]


# Through the API.


def new_email() -> str:
    return f"policy-{uuid.uuid4().hex[:12]}@example.com"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password1234", "common"),
        ("Password1234!", "common"),
        ("aaaaaaaaaaaa", "repetitive"),
        ("123456789012", "sequential"),
        ("qwertyuiopas", "sequential"),
        ("{local} horse battery", "contains_email"),
        ("my support pin staple", "contains_service_name"),
    ],
)
async def test_sign_up_refuses_the_password_and_creates_no_account(
    h: Harness, password: str, reason: str
) -> None:
    email = new_email()
    password = password.format(local=email.partition("@")[0])
    response = await h.client.post("/v1/accounts", json={"email": email, "password": password})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "password_refused"
    assert body["reason"] == reason
    assert body["detail"] == PasswordRefused.messages[reason]
    assert body["errors"][0]["loc"] == ["body", "password"]
    assert body["errors"][0]["type"] == f"password_{reason}"
    assert password not in response.text

    # No account was made: signing in fails, and a good password signs up the same email.
    signed_in = await h.client.post(
        "/v1/auth/token", data={"username": email, "password": password}
    )
    assert signed_in.status_code == 401
    assert (
        await h.client.post("/v1/accounts", json={"email": email, "password": PASSWORD})
    ).status_code == 201
    await h.sign_in(email)


async def test_too_short_is_still_the_schemas_answer(h: Harness) -> None:
    response = await h.client.post("/v1/accounts", json={"email": new_email(), "password": "aaaa"})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_a_strong_password_signs_up(h: Harness) -> None:
    email = new_email()
    response = await h.client.post(
        "/v1/accounts", json={"email": email, "password": "nightingale river stone"}
    )
    assert response.status_code == 201, response.text
    await h.sign_in(email, "nightingale river stone")
