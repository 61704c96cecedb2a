"""A bad setting stops every `support-pin` command with one line that names it, and status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.settings import Settings
from tests.live import ROOT

COMMANDS = [["serve", "--port=1"], ["migrate"], ["agents", "list"], ["agents", "create", "x"]]


def _run(command: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_named_in_one_line(command: list[str]) -> None:
    secret = "short-secret"
    done = _run(command, SECRET_KEY=secret)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "support-pin: invalid setting SECRET_KEY: must be at least 32 characters"
    ]
    assert secret not in done.stderr


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"PIN_LENGTH": "six"},
            "support-pin: invalid setting PIN_LENGTH: "
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            {"HTTP_HEAD_TIMEOUT_SECONDS": "0"},
            "support-pin: invalid setting HTTP_HEAD_TIMEOUT_SECONDS: "
            "Input should be greater than or equal to 1",
        ),
        (
            {"ENVIRONMENT": "production"},
            "support-pin: invalid settings: SECRET_KEY must be set to a random value in production",
        ),
        (
            {"PIN_LENGTH": "2", "PIN_TTL_SECONDS": "0"},
            "support-pin: invalid setting PIN_LENGTH: "
            "Input should be greater than or equal to 6 (and 1 more)",
        ),
    ],
)
def test_the_line_says_why(settings: dict[str, str], line: str) -> None:
    done = _run(["migrate"], **settings)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
