"""Logging through structlog: JSON lines for machines, readable lines in a terminal.

Both structlog loggers and the standard library's (the server, asyncpg, our modules) end in one
handler on the root logger, rendered the same way. The request id (`request_id_var`, set by
the HTTP layer) appears on every line written while answering a request.

The access log, one line per request, is the exception: `access_line` renders it straight
to JSON and writes it to stderr, with the same fields as any other line: it is written for
every request, has a fixed shape and needs none of their generality.
Nothing here logs request bodies or headers: secrets never reach a log line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor

LogFormat = Literal["auto", "json", "console"]

_HANDLER_NAME = "support-pin"
ACCESS_LOGGER = "support_pin.access"

# Set by the HTTP layer for each request: log lines and audit rows carry it.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property  # a live lookup instead of a stored stream
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


class _Pid:
    """The process id, read once and again in a forked child: `os.getpid()` is a system
    call, and the access line is written for every request."""

    def __init__(self) -> None:
        self.value = os.getpid()

    def refresh(self) -> None:
        self.value = os.getpid()


_pid = _Pid()
os.register_at_fork(after_in_child=_pid.refresh)


def _add_pid(_: Any, __: str, event: EventDict) -> EventDict:
    # Which worker wrote the line, when `serve --workers` runs several.
    event["pid"] = _pid.value
    return event


def _add_request_id(_: Any, __: str, event: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _timestamp() -> str:
    # As structlog's TimeStamper(fmt="iso", utc=True) writes it.
    return datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")


def _json_line(event: EventDict, **kwargs: Any) -> str:
    """Compact JSON by orjson, as `access_line` writes it; what orjson refuses (an integer
    wider than 64 bits) by the standard library, in the same compact form."""
    try:
        return orjson.dumps(event, default=kwargs.get("default")).decode()
    except TypeError:
        return json.dumps(event, **kwargs, separators=(",", ":"))


def _shared_processors() -> list[Processor]:
    return [
        _add_request_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]


def _drop_color_message(_: Any, __: str, event: EventDict) -> EventDict:
    # uvicorn adds a colored copy of its message as an `extra`; one copy is enough.
    event.pop("color_message", None)
    return event


def wants_json(log_format: LogFormat) -> bool:
    if log_format == "auto":
        return not sys.stderr.isatty()
    return log_format == "json"


class _AccessLog:
    """Where `access_line` writes: straight to stderr in JSON, else through structlog."""

    def __init__(self) -> None:
        self.json = True
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self.structlog: Any = structlog.get_logger(ACCESS_LOGGER)


_access = _AccessLog()


def access_line(method: str, route: str, status: int, duration_ms: float, request_id: str) -> None:
    """The access-log line of one answered request (api/middleware.py)."""
    if not _access.logger.isEnabledFor(logging.INFO):
        return
    if not _access.json:  # a person at a terminal: the readable renderer
        _access.structlog.info(
            "request",
            method=method,
            route=route,
            status=status,
            duration_ms=duration_ms,
            request_id=request_id,
        )
        return
    line = orjson.dumps(
        {
            "event": "request",
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
            "logger": ACCESS_LOGGER,
            "level": "info",
            "timestamp": _timestamp(),
            "pid": _pid.value,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )
    with contextlib.suppress(OSError, ValueError):  # stderr gone: as logging does, carry on
        sys.stderr.write(line.decode())


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Route every log record through structlog's renderer. Safe to call more than once."""
    renderer: Processor
    _access.json = wants_json(log_format)
    if _access.json:
        renderer = structlog.processors.JSONRenderer(serializer=_json_line)
        exceptions: list[Processor] = [structlog.processors.format_exc_info]
    else:
        # Plain tracebacks: the rich formatter would print local variables, which can hold
        # a password or a PIN.
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        exceptions = []
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.ExtraAdder(),
            _drop_color_message,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *exceptions,
            renderer,
        ],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's own access log would duplicate ours (api/middleware.py writes one per request).
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    access.disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
