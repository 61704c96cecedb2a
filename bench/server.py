"""The service under test: `support-pin serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """Starts the service, waits for /healthz, and stops it (SIGTERM, then SIGKILL)."""

    def __init__(self, env: dict[str, str], *, workers: int, log_path: Path) -> None:
        self.env = env
        self.workers = workers
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        log = self.log_path.open("wb")
        args = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--no-migrate",
        ]
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed arguments)
            args, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_ready(timeout=60)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the service exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2) as response:  # noqa: S310 (our loopback URL)
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the service did not become ready; see {self.log_path}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
