"""Schemathesis fuzzes every operation of openapi.yaml against the live service (a uvicorn
process on the test stores) with a real user token and a real agent key: no 5xx, no answer
that breaks the schema.

CI runs a bounded number of examples per operation; a longer run is
`SCHEMATHESIS_MAX_EXAMPLES=1000 scripts/test tests/test_schemathesis.py` (see README).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, settings

from tests import stores as test_stores_module
from tests.conftest import GENEROUS_RATE_LIMITS, PASSWORD
from tests.live import ROOT, running_server

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))

# Event streams stay open while the session lives (tests/test_live_events.py has them).
schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml").exclude(path_regex=r"/stream$")
# Valid and invalid inputs alike: invalid ones must get a documented 4xx, never a 5xx.
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@dataclass
class Live:
    base_url: str
    env: dict[str, str]
    email: str
    agent_key: str
    user_token: str = field(default="")

    def sign_in(self) -> str:
        response = httpx.post(
            self.base_url + "/v1/auth/token",
            data={"username": self.email, "password": PASSWORD},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


@pytest.fixture(scope="module")
def live(
    db_url: str, stores: test_stores_module.TestStores, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    env = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": db_url,
        "REDIS_URL": stores.redis_url,
        "REDIS_CLUSTER": "true" if stores.redis_cluster else "false",
        "REDIS_KEY_PREFIX": f"test:st:{uuid.uuid4().hex[:12]}:",
        "SECRET_KEY": "test-secret-key-" + "y" * 32,
        "LOG_LEVEL": "WARNING",
        # Fuzzing is thousands of requests from one address; tests/test_rate_limits.py covers
        # the 429s (which the schema documents and the checks accept anyway).
        **{name.upper(): value for name, value in GENEROUS_RATE_LIMITS.items()},
    }
    created = subprocess.run(
        [sys.executable, "-m", "service.cli", "agents", "create", f"fuzz-{uuid.uuid4().hex[:8]}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    agent_key = created.stdout.strip().splitlines()[-1]
    log_path = tmp_path_factory.mktemp("schemathesis") / "server.log"
    with running_server(env, log_path) as running:
        base_url = running.url
        email = f"fuzz-{uuid.uuid4().hex[:12]}@example.com"
        response = httpx.post(
            base_url + "/v1/accounts", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert response.status_code == 201, response.text
        server = Live(base_url, env, email, agent_key)
        server.user_token = server.sign_in()
        yield server
    # This server's own keys, and nothing else (the Redis may be shared).
    client_class = redis.RedisCluster if stores.redis_cluster else redis.Redis
    client = client_class.from_url(stores.redis_url)
    try:
        for key in client.scan_iter(match=env["REDIS_KEY_PREFIX"] + "*", count=1000):
            client.unlink(key)
    finally:
        client.close()


def credentials(case: schemathesis.Case[Any], live: Live) -> dict[str, str]:
    """The header the operation's security scheme asks for, with a real credential."""
    schemes = {name for item in case.operation.definition.raw.get("security", []) for name in item}
    if "AgentKey" in schemes:
        return {"Authorization": f"Bearer {live.agent_key}"}
    if "UserToken" in schemes:
        if case.operation.path == "/v1/auth/logout":
            # Logging out kills the token: give each logout a session of its own.
            return {"Authorization": f"Bearer {live.sign_in()}"}
        return {"Authorization": f"Bearer {live.user_token}"}
    return {}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], live: Live) -> None:
    # The real credential wins over any Authorization value schemathesis generated for the
    # security scheme (its `ignored_auth` check sends requests without it separately).
    headers = {**dict(case.headers or {}), **credentials(case, live)}
    response = case.call_and_validate(
        base_url=live.base_url,
        headers=headers,
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
        timeout=30,
    )
    assert_valid_input_accepted(case, response)


# Refusals of schema-valid input that the schema cannot express: "printable" text (JSON
# Schema has no Unicode categories), email-validator's special-use domains (RFC 6761: .test,
# .invalid, .localhost...), a PIN with too few digits among its spaces, a well-formed but
# wrong 2FA code (400 `invalid_code`), and the password and email rules (blocklist,
# look-alike addresses).
_UNEXPRESSIBLE = (
    "control characters",
    "NUL characters",
    "not a valid email address",
    "must be 6 to 10 digits",
)
_RULE_REFUSALS = ("password_refused", "email_confusable")


def _only_unexpressible(errors: list[dict[str, Any]]) -> bool:
    """True when every error is an unexpressible rule; for a body that is one of several
    models (`loc` names the model), when that holds of the errors of some one model."""

    def unexpressible(group: list[dict[str, Any]]) -> bool:
        return all(
            error["type"] == "value_error" and any(text in error["msg"] for text in _UNEXPRESSIBLE)
            for error in group
        )

    by_model: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        loc = error.get("loc", [])
        if len(loc) > 2 and loc[0] == "body" and str(loc[1])[:1].isupper():
            by_model.setdefault(str(loc[1]), []).append(error)
    if by_model and len(by_model) > 1:
        return any(unexpressible(group) for group in by_model.values())
    return unexpressible(errors)


def assert_valid_input_accepted(case: schemathesis.Case[Any], response: Any) -> None:
    """Schemathesis's positive_data_acceptance, minus the refusals listed above: any other
    4xx for input the schema allows means the schema and the route disagree."""
    generation = getattr(getattr(case, "meta", None), "generation", None)
    if getattr(generation, "mode", None) != schemathesis.GenerationMode.POSITIVE:
        return
    status = response.status_code
    if status < 400 or status in (401, 403, 404, 409, 429):
        return
    body = response.json()
    # A well-formed but wrong secret: a code, a link's token, a password, a passkey.
    if status == 400 and body.get("code") in (
        "invalid_code",
        "invalid_token",
        "invalid_credentials",
        "passkey_refused",
    ):
        return
    if status == 422 and body.get("code") in _RULE_REFUSALS:
        return
    if status == 422 and _only_unexpressible(body.get("errors", [])):
        return
    raise AssertionError(
        f"schema-valid input refused: {case.operation.label} -> {status} {response.text}"
    )
