"""`serve --workers 2`: on SIGTERM every worker finishes its own requests in flight, and the
port stops taking connections."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, Harness
from tests.live import running_server, settings_env

pytestmark = pytest.mark.slow


def _status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def _start_request(address: tuple[str, int], body: bytes) -> socket.socket:
    """A request under way: its head sent, its body not yet complete."""
    sock = socket.create_connection(address, timeout=20)
    sock.sendall(
        b"POST /v1/accounts HTTP/1.1\r\nHost: workers\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )
    return sock


async def test_sigterm_lets_every_worker_finish_its_requests(h: Harness, tmp_path: Path) -> None:
    # One request at a time per worker: a request that is not refused at once is under way in
    # a worker that had none, so two such requests are in two different workers.
    env = settings_env(h.services.settings, http_max_concurrent_requests=1)
    with running_server(env, tmp_path / "server.log", workers=2, graceful_timeout=15) as server:
        address = ("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        under_way: list[tuple[socket.socket, bytes]] = []
        try:
            # Until both workers have taken one: the second may still be starting, and the
            # kernel hands each new connection to whichever worker accepts first.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                body = json.dumps(
                    {"email": f"w-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD}
                ).encode()
                sock = _start_request(address, body)
                sock.settimeout(0.3)
                try:
                    assert _status(sock) == 503  # that worker has one under way already
                    sock.close()
                except TimeoutError:
                    sock.settimeout(20)
                    under_way.append((sock, body))
                    if len(under_way) == 2:
                        break
                await asyncio.sleep(0.05)
            assert len(under_way) == 2
            server.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(address, timeout=2).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                await asyncio.sleep(0.1)
            assert server.process.poll() is None, "exited with requests in flight"
            for sock, body in under_way:
                sock.sendall(body[5:])
            statuses = [_status(sock) for sock, _ in under_way]
        finally:
            for sock, _ in under_way:
                sock.close()
        assert server.process.wait(20) == 0
        pids = {
            line["pid"]
            for line in server.json_lines()
            if line.get("event") == "request" and line.get("status") == 201
        }
    assert statuses == [201, 201]
    assert len(pids) == 2
