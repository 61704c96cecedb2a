"""docker-compose.yml, .env.example and the Dockerfile, checked without a Docker engine.

No engine runs on this project's machines, so the compose file is read as data: every
variable it passes to the service must be a real setting, the settings it passes must make a
valid production configuration, and the start order and health checks must be in place."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from service.settings import Settings
from tests.conftest import Harness
from tests.live import running_server, settings_env

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
SERVICE_CONTAINERS = ("app", "migrate")
REQUIRED_IN_PRODUCTION = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op in (":-", "-") and not value:
            return arg or ""
        if op in (":?", "?") and not value:
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def filled_env(env_example: dict[str, str]) -> dict[str, str]:
    """.env.example with the two secrets an operator must fill in, filled in."""
    env = dict(env_example)
    env["SECRET_KEY"] = secrets.token_urlsafe(48)
    env["POSTGRES_PASSWORD"] = secrets.token_urlsafe(16)
    return env


def service_environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    environment = compose["services"][name]["environment"]
    assert isinstance(environment, dict), "use the mapping form so names can be checked"
    return {str(key): str(value) for key, value in environment.items()}


@pytest.mark.parametrize("service", SERVICE_CONTAINERS)
def test_every_variable_passed_to_the_service_is_a_setting(
    compose: dict[str, Any], service: str
) -> None:
    unknown = set(service_environment(compose, service)) - SETTING_NAMES
    assert not unknown, f"not settings of service/settings.py: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICE_CONTAINERS)
def test_the_passed_settings_make_a_valid_production_configuration(
    compose: dict[str, Any], env_example: dict[str, str], service: str
) -> None:
    environment = service_environment(compose, service)
    assert environment["ENVIRONMENT"] == "production"
    assert set(environment) >= REQUIRED_IN_PRODUCTION
    env = filled_env(env_example)
    values = {key.lower(): interpolate(value, env) for key, value in environment.items()}
    settings = Settings.model_validate(values)  # the values alone, not this process env
    assert settings.environment == "production"
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://support_pin:")
    assert settings.database_url.endswith("@postgres:5432/support_pin")
    assert settings.redis_url == "redis://redis:6379/0"
    # And each required one really is required: without it production refuses to start.
    for name in REQUIRED_IN_PRODUCTION:
        without = {key: value for key, value in values.items() if key != name.lower()}
        with pytest.raises(ValidationError):
            Settings.model_validate(without)


def test_secrets_must_be_filled_in_before_compose_starts(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    # .env.example ships no usable secret; compose refuses (`${VAR:?}`) until one is set.
    assert env_example["SECRET_KEY"] == ""
    assert env_example["POSTGRES_PASSWORD"] == ""
    environment = service_environment(compose, "app")
    for name in ("SECRET_KEY", "DATABASE_URL"):
        with pytest.raises(KeyError):
            interpolate(environment[name], env_example)


def test_env_example_names_only_settings_or_compose_variables(
    env_example: dict[str, str],
) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    compose_variables = {match["name"] for match in _VARIABLE.finditer(text)}
    assert compose_variables <= set(env_example), "every ${VAR} is documented in .env.example"
    for name in env_example:
        assert name in SETTING_NAMES or name in compose_variables, name
    readme = (ROOT / "README.md").read_text()
    for name in env_example:
        assert f"`{name}`" in readme, f"{name} is not documented in README.md"


def test_stores_are_healthy_before_the_app_starts_and_migrations_run_once(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    for store in ("postgres", "redis"):
        assert services[store]["healthcheck"]["test"]
        volume = services[store]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{store} keeps its data in a named volume"
    app = services["app"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "--no-migrate" in app["command"]
    assert services["migrate"]["command"] == ["support-pin", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    # The stores are reachable only inside the compose network.
    assert "ports" not in services["postgres"]
    assert "ports" not in services["redis"]


def test_dockerfile_runs_pinned_as_non_root_with_a_health_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(froms) >= 2, "multi-stage"
    assert all(re.match(r"python:3\.11-slim", image) for image in froms)
    assert "-r requirements.lock" in text
    assert "--no-deps ." in text
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.MULTILINE)
    assert re.search(r'^CMD \["support-pin", "serve"', text, re.MULTILINE)


@pytest.mark.slow
async def test_the_image_health_check_command_works_on_a_live_server(
    h: Harness, tmp_path: Path
) -> None:
    """The HEALTHCHECK's own command (python + urllib: slim images have no curl) passes
    against a running service and fails once it is gone."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    match = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.MULTILINE)
    assert match, "HEALTHCHECK ... CMD [exec form]"
    command = json.loads(match[1])
    assert command[0] == "python"
    with running_server(settings_env(h.services.settings), tmp_path / "server.log") as server:
        port = server.url.rsplit(":", 1)[1]
        probe = [sys.executable, *(part.replace(":8000/", f":{port}/") for part in command[1:])]

        def run_probe() -> int:
            return subprocess.run(probe, check=False, capture_output=True, timeout=10).returncode

        assert await asyncio.to_thread(run_probe) == 0
        server.stop()
        assert await asyncio.to_thread(run_probe) != 0


def test_the_idp_profile_runs_the_development_provider_and_an_app_signing_in_through_it(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    """`docker compose --profile idp up`: tests/idp/server.js with dev-config.json, and the
    app image on another port with that provider's issuer, client and audience."""
    services = compose["services"]
    idp, app_sso = services["idp"], services["app-sso"]
    assert idp["profiles"] == ["idp"]
    assert app_sso["profiles"] == ["idp"]
    assert "profiles" not in services["app"], "plain `docker compose up` is unchanged"
    assert "dev-config.json" in " ".join(idp["command"])
    config = json.loads((ROOT / "tests" / "idp" / "dev-config.json").read_text())
    assert "jwks" not in config, "no private key is committed: server.js makes one"
    assert config["host"] == "0.0.0.0"  # noqa: S104 (inside its container)
    host = urlsplit(config["issuer"]).hostname
    assert host in idp["networks"]["default"]["aliases"]
    assert app_sso["image"] == services["app"]["image"]
    environment = service_environment(compose, "app-sso")
    assert set(environment) <= SETTING_NAMES
    assert environment["OIDC_ISSUER"] == config["issuer"]
    assert environment["OIDC_AUDIENCE"] == config["audience"]
    (client,) = config["clients"]
    assert environment["OIDC_CLIENT_ID"] == client["client_id"]
    assert environment["OIDC_CLIENT_SECRET"] == client["client_secret"]
    published = app_sso["ports"][0].rsplit(":", 2)[-2]
    assert f"http://localhost:{published}/v1/auth/oidc/callback" in client["redirect_uris"]
    env = filled_env(env_example)
    values = {key.lower(): interpolate(value, env) for key, value in environment.items()}
    settings = Settings.model_validate(values)
    assert settings.oidc_enabled
    assert settings.environment == "development"
