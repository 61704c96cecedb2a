"""api/protocol.py: answers leave in one write, and still arrive whole, in order, and closed
when they should be. A real uvicorn on a real socket, read by a raw socket client."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.protocol import CoalescingHttpToolsProtocol, CoalescingTransport

BIG = b"x" * (1 << 20)  # past any socket buffer: the transport's flow control takes part


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/stream":  # three chunks, the loop turning between them
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for chunk in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = BIG if path == "/big" else path.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CountingTransport(asyncio.Transport):
    """Between a `CoalescingTransport` and the socket's transport: counts the writes that
    reach the socket's transport, and passes everything on."""

    def __init__(self, transport: asyncio.Transport, writes: list[int]) -> None:
        super().__init__()
        self._transport = transport
        self._writes = writes

    def write(self, data: Any) -> None:
        self._writes.append(len(data))
        self._transport.write(data)

    def __getattribute__(self, name: str) -> Any:
        if name in ("write", "_transport", "_writes", "__class__"):
            return object.__getattribute__(self, name)
        return getattr(object.__getattribute__(self, "_transport"), name)


def counting(protocol: type[HttpToolsProtocol], writes: list[int]) -> type[HttpToolsProtocol]:
    class Counting(protocol):  # type: ignore[valid-type,misc]  # a class made at run time
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(CountingTransport(transport, writes))

    return Counting


Serve = Callable[[type[HttpToolsProtocol]], Awaitable[int]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(protocol: type[HttpToolsProtocol]) -> int:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, http=protocol, ws="none", log_config=None, lifespan="on")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        servers.append((server, task))
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        port: int = sock.getsockname()[1]
        return port

    yield start
    for server, task in servers:
        server.should_exit = True
        await task


async def exchange(port: int, raw: bytes) -> bytes:
    """Send `raw`, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(-1), timeout=10)
    finally:
        writer.close()


def get(path: str, *, close: bool = False) -> bytes:
    connection = b"close" if close else b"keep-alive"
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nhost: x\r\nconnection: " + connection + b"\r\n\r\n"
    )


async def test_an_answer_leaves_in_one_write_where_uvicorn_makes_two(serve: Serve) -> None:
    ours: list[int] = []
    theirs: list[int] = []
    for protocol, writes in ((CoalescingHttpToolsProtocol, ours), (HttpToolsProtocol, theirs)):
        port = await serve(counting(protocol, writes))
        answer = await exchange(port, get("/small", close=True))
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\n/small")
    assert len(ours) == 1, ours
    assert len(theirs) == 2, theirs  # the control: head and body apart
    assert ours[0] == sum(theirs)


async def test_pipelined_requests_get_their_answers_whole_and_in_order(serve: Serve) -> None:
    port = await serve(CoalescingHttpToolsProtocol)
    answer = await exchange(port, get("/a") + get("/big") + get("/stream") + get("/b", close=True))
    parts = answer.split(b"HTTP/1.1 200 OK\r\n")
    assert parts[0] == b""
    assert len(parts) == 5
    assert parts[1].endswith(b"\r\n\r\n/a")
    assert parts[2].endswith(b"\r\n\r\n" + BIG)
    # chunked: each chunk framed, then the last, empty one
    assert parts[3].endswith(b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n")
    assert parts[4].endswith(b"\r\n\r\n/b")


async def test_closing_sends_what_is_waiting_first_and_aborting_drops_it() -> None:
    loop = asyncio.get_running_loop()
    received: list[bytes] = []
    done = loop.create_future()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            received.append(data)

        def connection_lost(self, exc: Exception | None) -> None:
            done.set_result(None)

    for aborted in (False, True):
        received.clear()
        done = loop.create_future()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        await loop.connect_accepted_socket(Sink, theirs)
        wrapped = CoalescingTransport(transport, loop)
        wrapped.write(b"head,")
        wrapped.write(b"body")
        assert wrapped.get_write_buffer_size() == len(b"head,body")
        if aborted:
            wrapped.abort()
        else:
            wrapped.close()
        await asyncio.wait_for(done, timeout=5)
        assert b"".join(received) == (b"" if aborted else b"head,body")
        assert wrapped.is_closing()
