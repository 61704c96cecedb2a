"""Real service processes for end-to-end tests: `support-pin serve` on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment variables that reproduce `settings` in another process."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, dict):
            value = json.dumps(value)  # dict settings are JSON
        elif isinstance(value, tuple | list):
            value = ",".join(str(item) for item in value)  # list settings are comma-separated
        env[name.upper()] = str(value)
    env.update({key.upper(): str(value) for key, value in overrides.items()})
    return env


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: Any = field(repr=False)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 10.0), **kwargs)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every log line, each of which must be one JSON object."""
        lines = [line for line in self.log_text().splitlines() if line.strip()]
        return [json.loads(line) for line in lines]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log_file.close()
        return self.process.returncode


def start_server(
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 1,
    graceful_timeout: int = 10,
    ready_timeout: float = 30.0,
) -> LiveServer:
    """Start `support-pin serve` (no migrations: the test database is migrated) and wait
    until it answers /healthz."""
    port = free_port()
    full_env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {n.upper() for n in Settings.model_fields}
    }
    full_env.update(env)
    full_env.setdefault("LOG_FORMAT", "json")
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--workers={workers}",
            f"--graceful-timeout={graceful_timeout}",
            "--no-migrate",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path, log_file)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"server exited early:\n{server.log_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"server did not start in {ready_timeout}s:\n{server.log_text()}")


@contextlib.contextmanager
def running_server(env: dict[str, str], log_path: Path, **kwargs: Any) -> Iterator[LiveServer]:
    server = start_server(env, log_path, **kwargs)
    try:
        yield server
    finally:
        server.stop()
