"""The embedded development stores belong to the process that started them: other commands
pointed at the same DATA_DIR use them and leave them running."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.embedded import STATE_FILE
from service.settings import Settings
from tests.conftest import PASSWORD
from tests.live import ROOT, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Under /tmp rather than pytest's 0700 folder: as root, PostgreSQL runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="support-pin-embedded-"))
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _env(data_dir: Path) -> dict[str, str]:
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(ENVIRONMENT="development", DATA_DIR=str(data_dir), LOG_FORMAT="json")
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sign_in(url: str, email: str) -> int:
    answer = httpx.post(
        f"{url}/v1/auth/token", data={"username": email, "password": PASSWORD}, timeout=10
    )
    return answer.status_code


@contextlib.contextmanager
def _serving(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--host=127.0.0.1", f"--port={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def test_other_commands_use_the_running_stores_and_leave_them_running(
    data_dir: Path, tmp_path: Path
) -> None:
    env = _env(data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving(env, port, tmp_path / "serve.log") as server:
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        created = httpx.post(
            f"{url}/v1/accounts", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert created.status_code == 201, created.text
        assert _sign_in(url, email) == 200

        made = _cli(env, "agents", "create", "x")
        assert made.returncode == 0, made.stderr
        assert "created agent 'x'" in made.stdout
        listed = _cli(env, "agents", "list")
        assert listed.returncode == 0, listed.stderr
        assert any(line.startswith("x\t") for line in listed.stdout.splitlines())
        assert _sign_in(url, email) == 200  # not 503: the stores still run

        second = _cli(env, "serve", "--host=127.0.0.1", f"--port={port}")
        assert second.returncode != 0
        assert second.stderr.splitlines() == [
            f"support-pin: cannot listen on 127.0.0.1:{port}: Address already in use"
        ]
        assert _sign_in(url, email) == 200
        assert server.poll() is None

        redis_url = json.loads((data_dir / STATE_FILE).read_text())["redis_url"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
    # The owner stopped what it started.
    assert not (data_dir / STATE_FILE).exists()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    alone = _cli(env, "agents", "list")  # starts them anew, as their owner, and stops them
    assert alone.returncode == 0, alone.stderr
    assert not (data_dir / STATE_FILE).exists()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
