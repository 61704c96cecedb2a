"""Prometheus metrics of the service (prometheus-client).

With several workers, `support-pin serve` sets PROMETHEUS_MULTIPROC_DIR before any
worker starts, so every process writes its samples there and `/metrics` sums them. Only
counters and histograms are used: they aggregate across processes without extra modes."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "support_pin_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "support_pin_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0),
)
PINS_ISSUED = Counter(
    "support_pin_pins_issued_total",
    "Support PINs issued (each with its audit row committed).",
)
VERIFICATIONS = Counter(
    "support_pin_verifications_total",
    "Agent verifications answered, by outcome: valid; invalid (wrong, expired, replaced, "
    "used PIN or unknown account); locked (refused: the account is locked).",
    ["outcome"],
)
LOCKS = Counter(
    "support_pin_account_locks_total",
    "Accounts locked after too many failed verifications.",
)
RATE_LIMITED = Counter(
    "support_pin_rate_limited_total",
    "Requests refused with 429 rate_limited, by route template.",
    ["route"],
)
STORE_ERRORS = Counter(
    "support_pin_store_errors_total",
    "Calls to a store that failed or timed out (answered 503 unavailable), by store.",
    ["store"],
)

# Every outcome label exists from the start, so dashboards and alerts see zeros, not gaps.
_VERIFICATION_CHILDREN = {
    outcome: VERIFICATIONS.labels(outcome) for outcome in ("valid", "invalid", "locked")
}
for _store in ("postgres", "redis"):
    STORE_ERRORS.labels(_store)


def count_verification(outcome: str) -> None:
    """One verification answered, by its metric outcome (`verification_outcome`)."""
    _VERIFICATION_CHILDREN[outcome].inc()


def verification_outcome(script_outcome: str) -> str:
    """The metric label for an outcome of the verify script (see service/pins.py)."""
    if script_outcome == "valid":
        return "valid"
    if script_outcome == "locked_out":
        return "locked"
    return "invalid"


# The labelled children of the per-request metrics, looked up once per label set rather than
# through `.labels()` (which validates and converts its arguments) on every request. As many
# entries as prometheus-client's own table: one per method, route template and status seen.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    children = _REQUEST_CHILDREN.get((method, route, status))
    if children is None:
        labels = (method, route, str(status))
        children = (HTTP_REQUESTS.labels(*labels), HTTP_LATENCY.labels(*labels))
        _REQUEST_CHILDREN[(method, route, status)] = children
    children[0].inc()
    children[1].observe(seconds)
    if status == 429:
        RATE_LIMITED.labels(route).inc()


def record_store_error(store: str) -> None:
    """The `on_error` hook of `Database` and `RedisStore`."""
    STORE_ERRORS.labels(store).inc()


def exposition() -> tuple[bytes, str]:
    """The current samples in the text format, summed over processes when multiprocess."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Called as a worker exits (multiprocess mode only)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped upstream
