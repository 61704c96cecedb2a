"""The HTTP edge of `support-pin serve` (SECURITY-RULES.md), checked from outside with real
sockets against the real process: a head over HTTP_MAX_HEAD_BYTES is refused without holding
memory, a head not completed within HTTP_HEAD_TIMEOUT_SECONDS is cut off, and requests past
HTTP_MAX_CONCURRENT_REQUESTS are answered 503."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from service.cli import server_config
from service.settings import Settings
from tests.conftest import Harness
from tests.live import LiveServer, running_server, settings_env

MB = 1024 * 1024


def _address(server: LiveServer) -> tuple[str, int]:
    return "127.0.0.1", int(server.url.rsplit(":", 1)[1])


def _rss(pid: int) -> int:
    """Resident memory of the process and its children (the workers, if any)."""
    process = psutil.Process(pid)
    return sum(each.memory_info().rss for each in [process, *process.children(recursive=True)])


def _status_line(sock: socket.socket) -> bytes:
    """The first line the server answers, or b"" when it closed the connection instead."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.partition(b"\r\n")[0]


def _send_huge_head(address: tuple[str, int]) -> bytes:
    head = b"GET /healthz HTTP/1.1\r\nHost: edge\r\nX-Filler: " + b"a" * MB + b"\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        # The server may answer and close before it has read it all.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        return _status_line(sock)


@contextlib.contextmanager
def _edge_server(h: Harness, tmp_path: Path, **settings: object) -> Iterator[LiveServer]:
    env = settings_env(h.services.settings, **settings)
    with running_server(env, tmp_path / "server.log") as server:
        yield server


def test_the_defaults_are_those_of_the_security_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_MAX_HEAD_BYTES",
        "HTTP_HEAD_TIMEOUT_SECONDS",
        "HTTP_MAX_CONCURRENT_REQUESTS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.http_max_head_bytes == 16 * 1024
    assert settings.http_head_timeout_seconds == 10
    assert settings.http_max_concurrent_requests == 1000
    config = server_config(settings, graceful_timeout=20)
    assert config.h11_max_incomplete_size == 16 * 1024
    assert config.h2_max_header_list_size == 16 * 1024
    assert config.keep_alive_timeout == 10
    assert config.include_server_header is False


@pytest.mark.slow
async def test_a_huge_head_is_refused_without_holding_memory(h: Harness, tmp_path: Path) -> None:
    with _edge_server(h, tmp_path) as server:
        address = _address(server)
        assert _send_huge_head(address) in (b"HTTP/1.1 431 ", b"")  # warm-up
        before = _rss(server.process.pid)
        answers = [_send_huge_head(address) for _ in range(50)]
        await asyncio.sleep(0.5)
        grown = _rss(server.process.pid) - before
        with server.client() as client:
            healthy = client.get("/healthz")
    refused = [answer for answer in answers if answer.startswith(b"HTTP/1.1 431")]
    assert all(answer.startswith(b"HTTP/1.1 431") or answer == b"" for answer in answers)
    assert len(refused) >= 40, answers  # a few may be cut off before the answer is read
    assert grown < 16 * MB, f"RSS grew by {grown / MB:.1f} MB over 50 huge heads"
    assert healthy.status_code == 200
    assert "server" not in healthy.headers


@pytest.mark.slow
async def test_a_head_that_is_not_completed_in_time_is_cut_off(h: Harness, tmp_path: Path) -> None:
    with _edge_server(h, tmp_path, http_head_timeout_seconds=2) as server:
        address = _address(server)
        with (
            socket.create_connection(address, timeout=0.5) as trickling,
            socket.create_connection(address, timeout=0.5) as silent,
        ):
            started = time.monotonic()
            trickling.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n")
            closed: dict[str, float] = {}
            while len(closed) < 2 and time.monotonic() - started < 8:
                for name, sock in (("trickling", trickling), ("silent", silent)):
                    if name in closed:
                        continue
                    try:
                        if name == "trickling":
                            sock.sendall(b"X")  # a byte at a time: a slowloris
                        data = sock.recv(100)
                    except TimeoutError:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        data = b""
                    assert data == b"", data  # no answer: the head never completed
                    closed[name] = time.monotonic() - started
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
    assert set(closed) == {"trickling", "silent"}, closed
    for name, after in closed.items():
        assert 1.5 <= after <= 4.5, (name, after)


@pytest.mark.slow
async def test_requests_past_the_bound_are_answered_503(h: Harness, tmp_path: Path) -> None:
    bound = 4
    with _edge_server(h, tmp_path, http_max_concurrent_requests=bound) as server:
        address = _address(server)
        # `bound` requests under way: heads in, bodies still arriving.
        waiting = [socket.create_connection(address, timeout=10) for _ in range(bound)]
        try:
            for sock in waiting:
                sock.sendall(
                    b"POST /v1/accounts HTTP/1.1\r\nHost: edge\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{"
                )
            await asyncio.sleep(0.5)
            with server.client() as client:
                refused = client.get("/healthz")
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["code"] == "unavailable"
            assert "server" not in refused.headers
            # A refusal is an answer like any other: it has a request id and security headers.
            assert refused.headers["x-request-id"]
            assert refused.headers["x-content-type-options"] == "nosniff"
        finally:
            for sock in waiting:
                sock.close()
        # Once those are gone, the service answers again.
        deadline = time.monotonic() + 5
        with server.client() as client:
            while (status := client.get("/healthz").status_code) != 200:
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.1)
