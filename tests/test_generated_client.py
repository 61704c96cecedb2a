"""The agent tooling's client, generated from openapi.yaml as the README says, used against a
live server: if the document and the service disagree, this is where it shows."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, Harness
from tests.live import ROOT, running_server, settings_env

pytestmark = pytest.mark.slow

PACKAGE = "support_pin_client"


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Any]:
    """`openapi-python-client generate` into a temporary folder, imported as a package."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(ROOT / "openapi.yaml"),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


async def test_agent_verification_flow_with_the_generated_client(
    generated: Any, h: Harness, tmp_path: Path
) -> None:
    _, agent_headers = await h.agent()
    agent_key = agent_headers["Authorization"].removeprefix("Bearer ")
    create_account = _module("api.accounts.create_account")
    create_token = _module("api.auth.create_token")
    create_support_pin = _module("api.me.create_support_pin")
    create_verification = _module("api.agent.create_verification")
    models = _module("models")

    env = settings_env(h.services.settings)
    with running_server(env, tmp_path / "server.log") as server, ExitStack() as clients:
        email = f"caller-{uuid.uuid4().hex[:12]}@example.com"
        anonymous = clients.enter_context(generated.Client(base_url=server.url))
        account = create_account.sync_detailed(
            client=anonymous, body=models.AccountCreate(email=email, password=PASSWORD)
        )
        assert account.status_code == 201
        token = create_token.sync(
            client=anonymous,
            body=models.PasswordGrantForm(username=email, password=PASSWORD),
        )
        assert isinstance(token, models.TokenOut)
        caller = clients.enter_context(
            generated.AuthenticatedClient(base_url=server.url, token=token.access_token)
        )
        issued = create_support_pin.sync(client=caller)
        assert isinstance(issued, models.PinOut)

        # The agent side: exactly what agent tooling does with the generated client.
        agent = clients.enter_context(
            generated.AuthenticatedClient(base_url=server.url, token=agent_key)
        )
        wrong = (
            "0" * len(issued.pin) if issued.pin != "0" * len(issued.pin) else "1" * len(issued.pin)
        )
        refused = create_verification.sync(
            client=agent, body=models.VerificationRequest(email=email, pin=wrong)
        )
        assert isinstance(refused, models.VerificationOut)
        assert refused.valid is False
        verified = create_verification.sync(
            client=agent, body=models.VerificationRequest(email=email, pin=issued.pin)
        )
        assert isinstance(verified, models.VerificationOut)
        assert verified.valid is True
        assert str(verified.account_id) == str(account.parsed.id)
        used = create_verification.sync(
            client=agent, body=models.VerificationRequest(email=email, pin=issued.pin)
        )
        assert used.valid is False

        # Errors arrive as the typed problem document.
        stranger = clients.enter_context(
            generated.AuthenticatedClient(base_url=server.url, token="spa_not-a-key")
        )
        problem = create_verification.sync_detailed(
            client=stranger, body=models.VerificationRequest(email=email, pin=issued.pin)
        )
        assert problem.status_code == 401
        assert isinstance(problem.parsed, models.Problem)
        assert problem.parsed.code == "unauthenticated"
