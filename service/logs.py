"""Logging through structlog: JSON lines for machines, readable lines in a terminal.

Both structlog loggers and the standard library's (uvicorn, asyncpg, our modules) end in one
handler on the root logger, rendered the same way. Values bound with
`structlog.contextvars.bind_contextvars` (the request id) appear on every line of a request.
Nothing here logs request bodies or headers: secrets never reach a log line."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor

LogFormat = Literal["auto", "json", "console"]

_HANDLER_NAME = "support-pin"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property  # a live lookup instead of a stored stream
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


def _add_pid(_: Any, __: str, event: EventDict) -> EventDict:
    # Which worker wrote the line, when `serve --workers` runs several.
    event["pid"] = os.getpid()
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
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


def configure_logging(level: str = "INFO", log_format: LogFormat = "auto") -> None:
    """Route every log record through structlog's renderer. Safe to call more than once."""
    renderer: Processor
    if wants_json(log_format):
        renderer = structlog.processors.JSONRenderer()
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


def get_logger(name: str) -> Any:
    """A structlog logger (typed loosely: structlog's bound loggers are dynamic)."""
    return structlog.get_logger(name)
