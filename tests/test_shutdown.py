"""Graceful shutdown: on SIGTERM the service stops taking connections and finishes the
requests it has already started."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import Harness
from tests.live import running_server, settings_env

pytestmark = pytest.mark.slow


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body[: _length(data)])


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def test_sigterm_finishes_the_request_in_flight(
    h: Harness, pg: asyncpg.Connection, tmp_path: Path
) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    env = settings_env(h.services.settings)
    with running_server(env, tmp_path / "server.log", graceful_timeout=15) as server:
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        body = json.dumps({"email": email, "pin": pin}).encode()
        head = (
            "POST /v1/agent/verifications HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Authorization: {agent['Authorization']}\r\n"
            "Content-Type: application/json\r\n"
            "X-Request-ID: in-flight-at-sigterm\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, port), timeout=10) as sock:
            # A request under way: headers in, the body still arriving (a slow client).
            sock.sendall(head + body[:7])
            await asyncio.sleep(1.0)  # for the server to read the headers and start the request
            server.process.send_signal(signal.SIGTERM)
            # It stops taking new connections (as soon as it has handled the signal)...
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((host, port), timeout=2).close()
                except ConnectionRefusedError:
                    break
                assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
                await asyncio.sleep(0.1)
            # ...but keeps running for the request it has.
            assert server.process.poll() is None, "exited with a request in flight"
            sock.sendall(body[7:])
            status, answer = _read_response(sock)
        assert status == 200
        assert answer["valid"] is True
        assert server.process.wait(15) == 0
    row = await pg.fetchval(
        "SELECT type FROM audit_events WHERE request_id = 'in-flight-at-sigterm'"
    )
    assert row == "verified"
