"""LOG_FORMAT: JSON lines for machines, readable lines for people at a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import sys

import pytest
import structlog

from service.logs import access_line, configure_logging, request_id_var, wants_json


def test_console_format_is_readable_and_json_format_is_one_object_per_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("INFO", "console")
        structlog.get_logger("support_pin.test").info("request", method="GET", status=200)
        console = capsys.readouterr().err
        assert "request" in console
        assert "method" in console
        with pytest.raises(json.JSONDecodeError):
            json.loads(console.strip().splitlines()[-1])

        configure_logging("INFO", "json")
        structlog.get_logger("support_pin.test").info("request", method="GET", status=200)
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["event"] == "request"
        assert line["method"] == "GET"
        assert line["status"] == 200
        assert line["level"] == "info"
        assert "timestamp" in line
        assert "pid" in line

        # orjson refuses integers over 64 bits: the standard library writes that line.
        structlog.get_logger("support_pin.test").info("big", count=2**70, thing=object())
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["count"] == 2**70
        assert line["thing"].startswith("<object object")
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
            structlog.get_logger("support_pin.test").exception("unhandled error")
        output = capsys.readouterr().err
        assert "ValueError" in output
        assert "8264013579" not in output
    finally:
        configure_logging("INFO", "auto")


def test_access_lines_have_the_fields_of_every_other_line_and_follow_the_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("INFO", "json")
        structlog.get_logger("support_pin.test").info("other")
        access_line("POST", "/v1/agent/verifications", 200, 1.25, "abc123")
        other, access = (json.loads(line) for line in capsys.readouterr().err.splitlines())
        assert set(access) == set(other) | {
            "method",
            "route",
            "status",
            "duration_ms",
            "request_id",
        }
        assert access == access | {
            "event": "request",
            "logger": "support_pin.access",
            "level": "info",
            "method": "POST",
            "route": "/v1/agent/verifications",
            "status": 200,
            "duration_ms": 1.25,
            "request_id": "abc123",
            "pid": other["pid"],
        }
        assert access["timestamp"].endswith("Z")
        assert access["timestamp"] >= other["timestamp"]  # the same ISO 8601 form, in order

        configure_logging("WARNING", "json")
        access_line("GET", "/healthz", 200, 0.5, "def456")
        assert capsys.readouterr().err == ""

        configure_logging("INFO", "console")
        access_line("GET", "/healthz", 200, 0.5, "def456")
        console = capsys.readouterr().err
        assert "request" in console
        assert "def456" in console
        with pytest.raises(json.JSONDecodeError):
            json.loads(console.strip())
    finally:
        configure_logging("INFO", "auto")


def test_every_line_written_while_answering_carries_the_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("INFO", "json")
        token = request_id_var.set("req-42")
        try:
            structlog.get_logger("support_pin.test").info("from structlog")
            logging.getLogger("some.library").warning("from the logging module")
        finally:
            request_id_var.reset(token)
        structlog.get_logger("support_pin.test").info("outside a request")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [line.get("request_id") for line in lines] == ["req-42", "req-42", None]
    finally:
        configure_logging("INFO", "auto")


def test_a_forked_worker_writes_its_own_pid() -> None:
    """The pid on each line is read once per process (a system call per request otherwise);
    uvicorn's workers are forked, and each line must still name the worker that wrote it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one access line into the pipe, then out at once
        try:
            sys.stderr = io.TextIOWrapper(os.fdopen(write, "wb"), write_through=True)
            configure_logging("INFO", "json")
            access_line("GET", "/healthz", 200, 0.5, "forked")
            structlog.get_logger("support_pin.test").info("from the child")
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        lines = [json.loads(line) for line in pipe.read().splitlines()]
    os.waitpid(pid, 0)
    assert len(lines) == 2
    assert {line["pid"] for line in lines} == {pid}
    assert pid != os.getpid()
