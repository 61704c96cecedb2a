"""LOG_FORMAT: JSON lines for machines, readable lines for people at a terminal."""

from __future__ import annotations

import json

import pytest

from service.logs import configure_logging, get_logger, wants_json


def test_console_format_is_readable_and_json_format_is_one_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("INFO", "console")
        get_logger("support_pin.test").info("request", method="GET", status=200)
        console = capsys.readouterr().err
        assert "request" in console
        assert "method" in console
        with pytest.raises(json.JSONDecodeError):
            json.loads(console.strip().splitlines()[-1])

        configure_logging("INFO", "json")
        get_logger("support_pin.test").info("request", method="GET", status=200)
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["event"] == "request"
        assert line["method"] == "GET"
        assert line["status"] == 200
        assert line["level"] == "info"
        assert "timestamp" in line
        assert "pid" in line
    finally:
        configure_logging("INFO", "auto")


def test_auto_means_json_unless_stderr_is_a_terminal() -> None:
    # Under pytest stderr is captured, not a terminal.
    assert wants_json("auto") is True
    assert wants_json("json") is True
    assert wants_json("console") is False


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_tracebacks_never_show_local_variables(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    def verify_something() -> None:
        candidate_pin = "8264013579"  # a local a traceback printer could show
        raise ValueError("boom " + str(len(candidate_pin)))

    try:
        configure_logging("INFO", log_format)  # type: ignore[arg-type]  # parametrized literal
        try:
            verify_something()
        except ValueError:
            get_logger("support_pin.test").exception("unhandled error")
        output = capsys.readouterr().err
        assert "ValueError" in output
        assert "8264013579" not in output
    finally:
        configure_logging("INFO", "auto")
