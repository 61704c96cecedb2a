"""Who may read /metrics: a listener of its own (METRICS_PORT), a bearer of METRICS_TOKEN on
the service's port, and nobody on the service's port in production without a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import HarnessFactory
from tests.live import free_port, running_server, settings_env

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-" + "m" * 32


async def test_with_a_token_only_its_bearer_reads_metrics(harness_factory: HarnessFactory) -> None:
    h = await harness_factory(metrics_token=TOKEN)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        refused = await h.client.get("/metrics", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "support_pin_" not in refused.text
    allowed = await h.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert "support_pin_http_requests_total" in allowed.text


async def test_production_without_a_token_does_not_serve_metrics_on_its_port(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(environment="production")
    hidden = await h.client.get("/metrics")
    assert hidden.status_code == 404
    assert "support_pin_" not in hidden.text
    with_token = await harness_factory(environment="production", metrics_token=TOKEN)
    allowed = await with_token.client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200


async def test_development_without_either_keeps_metrics_open(
    harness_factory: HarnessFactory,
) -> None:
    h = await harness_factory(environment="development")
    assert (await h.client.get("/metrics")).status_code == 200


def _requests_total(text: str, route: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "support_pin_http_requests_total" and sample.labels["route"] == route:
                total += sample.value
    return total


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_metrics_port_serves_every_workers_samples(
    harness_factory: HarnessFactory, tmp_path: Path, workers: int
) -> None:
    h = await harness_factory()
    metrics_port = free_port()
    env = settings_env(h.services.settings, metrics_port=metrics_port)
    with (
        running_server(env, tmp_path / "server.log", workers=workers) as server,
        server.client() as client,
    ):
        # Not on the service's port any more.
        assert client.get("/metrics").status_code == 404
        # New connections, so that with two workers both answer some.
        answered = 0
        for _ in range(300):
            assert client.get("/readyz", headers={"connection": "close"}).status_code == 200
            answered += 1
            pids = {
                line["pid"]
                for line in server.json_lines()
                if line.get("event") == "request" and line.get("route") == "/readyz"
            }
            if len(pids) >= workers and answered >= 10:
                break
        assert len(pids) == workers
        async with httpx.AsyncClient(timeout=10) as scraper:
            exposition = await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert exposition.status_code == 200
    assert _requests_total(exposition.text, "/readyz") == answered


def test_compose_does_not_publish_the_metrics_port() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        metrics_port = str(environment.get("METRICS_PORT", "")).strip()
        published = [str(port) for port in service.get("ports", [])]
        if metrics_port:
            assert not any(port.rsplit(":", 1)[-1] == metrics_port for port in published), name
        # The service listens on 8000 in its container; the development provider (profile
        # idp) is the one other service that publishes a port.
        if name != "idp":
            assert all(port.rsplit(":", 1)[-1] == "8000" for port in published), (name, published)
