"""Live events of an account, for its open pages (Server-Sent Events) on every instance.

An event is written once, by one script: appended to the account's Redis stream (kept for
the replay window, so a page that reconnects with Last-Event-ID gets what it missed) and
published on the account's pub/sub channel. Every instance holds one subscriber connection
and fans each message out to the streams it serves for that account; a channel is
subscribed while at least one of them is open. Classic pub/sub reaches every node of a Redis
Cluster, so the same code serves a single node and a cluster.

Events are published only after the change they report is committed to the audit log: no
page shows an event for an answer that was an error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from redis.asyncio import Redis

from service.errors import Unavailable
from service.redis_store import RedisStore

log = logging.getLogger(__name__)

REPLAY_SECONDS = 600
QUEUE_SIZE = 100  # a page that falls this far behind is closed and reconnects (replay)


@dataclass(frozen=True)
class LiveEvent:
    id: str
    name: str
    data: str  # JSON


@dataclass(frozen=True)
class Contact:
    """A finished check opens the account's "in contact with Support" window."""

    agent: str
    case_ref: str | None
    since: datetime
    window_seconds: int


# A message that tells a stream to end (its session ended, or it fell behind).
END = LiveEvent("", "", "")


class EventBus:
    def __init__(self, redis: RedisStore, subscriber: Redis) -> None:
        self._redis = redis
        self._keys = redis.keys
        self._publish = redis.script("publish_event")
        # A plain connection to one node: SUBSCRIBE is per connection, not per command.
        self._subscriber = subscriber
        self._pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        self._listeners: dict[str, set[asyncio.Queue[LiveEvent]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()  # publications under way

    async def publish(
        self,
        account_id: UUID,
        *events: tuple[str, dict[str, Any]],
        contact: Contact | None = None,
    ) -> list[str]:
        """Publish events (name, data) of the account, in one round trip; their ids."""
        pairs = [part for name, data in events for part in (name, orjson.dumps(data).decode())]
        async with self._redis.guard():
            reply = await self._publish(
                keys=[self._keys.events(account_id), self._keys.contact(account_id)],
                args=[
                    REPLAY_SECONDS * 1000,
                    self._keys.events_channel(account_id),
                    contact.window_seconds * 1000 if contact else 0,
                    contact.agent if contact else "",
                    (contact.case_ref or "") if contact else "",
                    contact.since.isoformat() if contact else "",
                    *pairs,
                ],
            )
        return [item.decode() if isinstance(item, bytes) else str(item) for item in reply]

    async def publish_quietly(
        self,
        account_id: UUID,
        *events: tuple[str, dict[str, Any]],
        contact: Contact | None = None,
    ) -> None:
        """`publish` for a change already committed and answered: if Redis fails now, the
        live pages miss the event (the audit log and the notices have it), and the answer
        stands."""
        try:
            await self.publish(account_id, *events, contact=contact)
        except Unavailable:
            log.warning("live event not published: Redis did not answer")

    def publish_soon(
        self,
        account_id: UUID,
        *events: tuple[str, dict[str, Any]],
        contact: Contact | None = None,
    ) -> None:
        """`publish_quietly`, after the answer rather than before it: a check's answer then
        takes the same time whether its account has live pages to tell or not (an address
        with no account has none)."""
        task = asyncio.get_running_loop().create_task(
            self.publish_quietly(account_id, *events, contact=contact)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def end_streams(self, account_id: UUID) -> None:
        """Tell every open page of the account, on every instance, to close (its sessions
        ended): pages reconnect, and are refused without a session."""
        async with self._redis.guard():
            await self._redis.client.publish(self._keys.events_channel(account_id), b"end")

    async def replay(self, account_id: UUID, after: str) -> list[LiveEvent]:
        """The account's events after the one with id `after` (still in the window)."""
        if not _is_stream_id(after):
            return []
        async with self._redis.guard():
            entries = await self._redis.client.xrange(
                self._keys.events(account_id), min=f"({after}", max="+", count=1000
            )
        found = []
        for entry_id, fields in entries or []:
            name, data = (fields or {}).get(b"e"), (fields or {}).get(b"d")
            # decode_responses is off: everything is bytes.
            if isinstance(entry_id, bytes) and isinstance(name, bytes) and isinstance(data, bytes):
                found.append(LiveEvent(entry_id.decode(), name.decode(), data.decode()))
        return found

    def listen_account(
        self, account_id: UUID
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[LiveEvent]]:
        """A queue of the account's events from now on, until the block ends."""
        return self.listen(self._keys.events_channel(account_id))

    async def send(self, channel: str, name: str, data: dict[str, Any]) -> None:
        """A message on a channel of its own (no replay): an agent's view of a request."""
        payload = f"-\n{name}\n{orjson.dumps(data).decode()}".encode()
        async with self._redis.guard():
            await self._redis.client.publish(channel, payload)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        """A queue of a channel's messages from now on, until the block ends."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(QUEUE_SIZE)
        async with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            if not listeners:
                async with self._redis.guard():
                    await self._pubsub.subscribe(channel)
            listeners.add(queue)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.get_running_loop().create_task(
                    self._read(), name="event-bus-reader"
                )
        try:
            yield queue
        finally:
            async with self._lock:
                listeners.discard(queue)
                if not listeners:
                    self._listeners.pop(channel, None)
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while self._listeners:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: end every stream (they reconnect)
                log.warning("event subscription lost: %s", type(exc).__name__)
                self._end_all()
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"].decode()
            self._deliver(channel, message["data"])

    def _deliver(self, channel: str, raw: bytes) -> None:
        if raw == b"end":
            event = END
        else:
            event_id, name, data = raw.decode().split("\n", 2)
            event = LiveEvent(event_id, name, data)
        for queue in list(self._listeners.get(channel, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A page this far behind is ended; it reconnects and replays what it missed.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(END)

    def _end_all(self) -> None:
        for listeners in self._listeners.values():
            for queue in listeners:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(END)

    @property
    def open_streams(self) -> int:
        return sum(len(listeners) for listeners in self._listeners.values())

    async def close(self) -> None:
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=1.0)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            await self._subscriber.aclose()


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_stream_id(value: str) -> bool:
    first, _, second = value.partition("-")
    return first.isdigit() and second.isdigit() and len(value) <= 41
