"""Metrics at /metrics and JSON access logs, checked on real `support-pin serve` processes."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service import metrics
from tests.conftest import PASSWORD, Harness
from tests.live import running_server, settings_env

pytestmark = pytest.mark.slow


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _fresh(client: httpx.Client) -> dict[str, str]:
    """Headers that make each request a new connection, so both workers get traffic."""
    return {"connection": "close"}


def _user(client: httpx.Client) -> tuple[str, dict[str, str]]:
    email = f"user-{uuid.uuid4().hex[:12]}@example.com"
    created = client.post(
        "/v1/accounts", json={"email": email, "password": PASSWORD}, headers=_fresh(client)
    )
    assert created.status_code == 201, created.text
    token = client.post(
        "/v1/auth/token", data={"username": email, "password": PASSWORD}, headers=_fresh(client)
    )
    assert token.status_code == 200, token.text
    return email, {"authorization": f"Bearer {token.json()['access_token']}", "connection": "close"}


def _verify(client: httpx.Client, agent: dict[str, str], email: str, pin: str) -> httpx.Response:
    response = client.post(
        "/v1/agent/verifications", headers=agent, json={"email": email, "pin": pin}
    )
    assert response.status_code == 200, response.text
    return response


async def test_metrics_count_a_scripted_flow_across_two_workers(h: Harness, tmp_path: Path) -> None:
    _, agent_headers = await h.agent()
    agent = {**agent_headers, "connection": "close"}
    env = settings_env(h.services.settings, account_max_failures=2)
    with (
        running_server(env, tmp_path / "server.log", workers=2) as server,
        server.client() as client,
    ):
        # One account: a wrong PIN, then the right one.
        email, user = _user(client)
        pin = client.post("/v1/me/support-pin", headers=user).json()["pin"]
        wrong = "1" * len(pin) if pin != "1" * len(pin) else "2" * len(pin)
        assert _verify(client, agent, email, wrong).json()["valid"] is False
        assert _verify(client, agent, email, pin).json()["valid"] is True
        # An unknown account.
        assert _verify(client, agent, "nobody@example.com", pin).json()["valid"] is False
        # Another account: two failures lock it (ACCOUNT_MAX_FAILURES=2), then a refusal.
        other, other_user = _user(client)
        other_pin = client.post("/v1/me/support-pin", headers=other_user).json()["pin"]
        other_wrong = (
            "1" * len(other_pin) if other_pin != "1" * len(other_pin) else "2" * len(other_pin)
        )
        _verify(client, agent, other, other_wrong)
        _verify(client, agent, other, other_wrong)
        assert _verify(client, agent, other, other_pin).json()["valid"] is False  # locked
        assert client.get("/no/such/path", headers=_fresh(client)).status_code == 404

        # Make sure both workers answered something, so the sums below prove that /metrics
        # adds up the processes (each new connection goes to whichever worker accepts it).
        def health_pids() -> set[int]:
            return {
                line["pid"]
                for line in server.json_lines()
                if line.get("event") == "request" and line["route"] == "/healthz"
            }

        for _ in range(300):
            if len(health_pids()) >= 2:
                break
            assert client.get("/healthz", headers=_fresh(client)).status_code == 200
        assert len(health_pids()) >= 2, "one worker took every connection"
        health_answers = sum(
            1
            for line in server.json_lines()
            if line.get("event") == "request" and line["route"] == "/healthz"
        )

        exposition = client.get("/metrics")
        assert exposition.status_code == 200
        assert exposition.headers["content-type"].startswith("text/plain")
        samples = _samples(exposition.text)

    health = {"method": "GET", "route": "/healthz", "status": "200"}
    assert _value(samples, "support_pin_http_requests_total", **health) == health_answers
    assert _value(samples, "support_pin_pins_issued_total") == 2
    assert _value(samples, "support_pin_verifications_total", outcome="valid") == 1
    assert _value(samples, "support_pin_verifications_total", outcome="invalid") == 4
    assert _value(samples, "support_pin_verifications_total", outcome="locked") == 1
    assert _value(samples, "support_pin_account_locks_total") == 1
    issue = {"method": "POST", "route": "/v1/me/support-pin", "status": "201"}
    assert _value(samples, "support_pin_http_requests_total", **issue) == 2
    assert _value(samples, "support_pin_http_request_duration_seconds_count", **issue) == 2
    verify = {"method": "POST", "route": "/v1/agent/verifications", "status": "200"}
    assert _value(samples, "support_pin_http_requests_total", **verify) == 6
    # Unmatched paths share one label value: no unbounded label sets from scanners.
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert _value(samples, "support_pin_http_requests_total", **unmatched) == 1
    assert not any("/no/such/path" in str(labels) for _, labels in samples)
    for store in ("postgres", "redis"):
        assert ("support_pin_store_errors_total", frozenset({("store", store)})) in samples


def test_rate_limited_answers_are_counted_by_route() -> None:
    def refused() -> float:
        value = REGISTRY.get_sample_value(
            "support_pin_rate_limited_total", {"route": "/v1/test-route"}
        )
        return value or 0.0

    before = refused()
    metrics.record_request("POST", "/v1/test-route", 429, 0.01)
    metrics.record_request("POST", "/v1/test-route", 200, 0.01)
    assert refused() == before + 1


async def test_one_json_log_line_per_request_with_its_id_and_no_secret(
    h: Harness, tmp_path: Path
) -> None:
    _, agent = await h.agent()
    agent_key = agent["Authorization"].removeprefix("Bearer ")
    # Ten-digit PINs: no chance of the digits turning up inside a timestamp.
    env = settings_env(h.services.settings, pin_length=10, log_format="json")
    sent: dict[str, str] = {}

    def rid(step: str) -> dict[str, str]:
        sent[step] = f"test-{step}-{uuid.uuid4().hex[:8]}"
        return {"x-request-id": sent[step]}

    with running_server(env, tmp_path / "server.log") as server, server.client() as client:
        email = f"user-{uuid.uuid4().hex[:12]}@example.com"
        created = client.post(
            "/v1/accounts", json={"email": email, "password": PASSWORD}, headers=rid("signup")
        )
        assert created.status_code == 201
        assert created.headers["x-request-id"] == sent["signup"]
        signed_in = client.post(
            "/v1/auth/token", data={"username": email, "password": PASSWORD}, headers=rid("token")
        )
        token = signed_in.json()["access_token"]
        user = {"authorization": f"Bearer {token}"}
        pin = client.post("/v1/me/support-pin", headers={**user, **rid("issue")}).json()["pin"]
        verified = client.post(
            "/v1/agent/verifications",
            headers={**agent, **rid("verify")},
            json={"email": email, "pin": pin},
        )
        assert verified.json()["valid"] is True
        bad = client.post(
            "/v1/auth/token",
            data={"username": email, "password": "wrong password!"},
            headers=rid("bad"),
        )
        assert bad.status_code == 401
        made = client.get("/v1/me", headers={**user, "x-request-id": "not valid!"})
        made_id = made.headers["x-request-id"]
        assert made_id != "not valid!"
        server.stop()
        lines = server.json_lines()  # every line of the log parses as JSON
        text = server.log_text()

    # (start_server's readiness probes are the /healthz lines.)
    requests = [
        line for line in lines if line.get("event") == "request" and line["route"] != "/healthz"
    ]
    for step, request_id in [*sent.items(), ("made", made_id)]:
        mine = [line for line in requests if line["request_id"] == request_id]
        assert len(mine) == 1, (step, mine)
        assert {"method", "route", "status", "duration_ms", "timestamp", "level"} <= mine[0].keys()
    by_id = {line["request_id"]: line for line in requests}
    assert by_id[sent["issue"]]["route"] == "/v1/me/support-pin"
    assert by_id[sent["issue"]]["status"] == 201
    assert by_id[sent["bad"]]["status"] == 401
    assert len(requests) == len(sent) + 1
    # uvicorn's own access log is off: ours is the only line per request.
    assert "HTTP/1.1" not in text
    for secret in (PASSWORD, token, pin, agent_key, "wrong password!"):
        assert secret not in text
