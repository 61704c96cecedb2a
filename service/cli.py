"""`support-pin`: run the service, apply migrations, manage agents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from service.embedded import EmbeddedStores, start_embedded
from service.logs import configure_logging
from service.settings import Settings

log = logging.getLogger("support_pin.cli")

DEMO_EMAIL = "demo@example.com"
DEMO_AGENT = "demo-agent"


def _settings_with_stores() -> tuple[Settings, EmbeddedStores | None]:
    """The settings; in development with no store URLs, start the embedded servers."""
    settings = Settings()
    if settings.database_url and settings.redis_url:
        return settings, None
    if settings.environment == "production":  # Settings already refuses this; be explicit
        raise SystemExit("DATABASE_URL and REDIS_URL must be set in production")
    embedded = start_embedded(settings.data_dir)
    os.environ["DATABASE_URL"] = settings.database_url or embedded.database_url
    os.environ["REDIS_URL"] = settings.redis_url or embedded.redis_url
    print(
        f"Using embedded PostgreSQL and Redis under {settings.data_dir} "
        "(set DATABASE_URL and REDIS_URL to use your own).",
        file=sys.stderr,
    )
    return Settings(), embedded


async def _migrate(settings: Settings) -> list[int]:
    from service.persistence.migrations import migrate

    assert settings.database_url
    return await migrate(settings.database_url)


async def _ensure_demo(settings: Settings) -> None:
    """On an embedded store's first start: a demo account and agent, credentials printed once."""
    from service.container import open_services
    from service.errors import AgentExists, EmailTaken

    services = await open_services(settings)
    try:
        password = secrets.token_urlsafe(12)
        try:
            await services.accounts.register(DEMO_EMAIL, password)
        except EmailTaken:
            return
        try:
            _, key = await services.agents.create(DEMO_AGENT)
        except AgentExists:
            key = "(exists already)"
        print(
            "\nFirst start: created a demo account and a demo agent (shown only this once)\n"
            f"  account email:    {DEMO_EMAIL}\n"
            f"  account password: {password}\n"
            f"  agent name:       {DEMO_AGENT}\n"
            f"  agent API key:    {key}\n",
            file=sys.stderr,
        )
    finally:
        await services.close()


def _multiprocess_metrics_dir(workers: int) -> tempfile.TemporaryDirectory[str] | None:
    """With several workers, each one writes its metric samples to a shared folder (which
    must be set before prometheus_client is imported in the workers, and start empty)."""
    from service.metrics import MULTIPROC_ENV

    if workers <= 1:
        return None
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        # Ops chose the folder; stale files from an earlier run would be summed in.
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
        return None
    folder = tempfile.TemporaryDirectory(prefix="support-pin-metrics-")
    os.environ[MULTIPROC_ENV] = folder.name
    return folder


def _exit_after_shutdown(signum: int, _: object) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings, embedded = _settings_with_stores()
    metrics_dir = _multiprocess_metrics_dir(args.workers)
    # uvicorn drains in-flight requests on SIGTERM/SIGINT, then raises the signal again; by
    # then the shutdown is complete, so exit with 0 and let the clean-up below (embedded
    # servers included) run.
    signal.signal(signal.SIGTERM, _exit_after_shutdown)
    signal.signal(signal.SIGINT, _exit_after_shutdown)
    try:
        if not args.no_migrate:
            asyncio.run(_migrate(settings))
        if embedded is not None:
            asyncio.run(_ensure_demo(settings))
        uvicorn.run(
            # create_app, plus garbage-collector tuning for a long-running server process.
            "api.serving:create_served_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            # Logging is ours (service/logs.py, set up by the app in every worker); the
            # access log is written by api/middleware.py, so uvicorn's is off.
            log_config=None,
            # uvloop and httptools (both in uvicorn[standard]) named explicitly, so a missing
            # one fails at start instead of silently falling back to the slower pure-Python ones.
            # The HTTP protocol is uvicorn's httptools one, sending each answer in one write
            # (api/protocol.py).
            loop="uvloop",
            http="api.protocol:CoalescingHttpToolsProtocol",
            # RequestContextMiddleware writes the access line (with route, status, duration
            # and request id); uvicorn's own would be a second line for every request.
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=args.graceful_timeout,
        )
    finally:
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            metrics_dir.cleanup()
    return 0


def _migrate_cmd(_: argparse.Namespace) -> int:
    settings, embedded = _settings_with_stores()
    try:
        applied = asyncio.run(_migrate(settings))
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


async def _with_agents(action: str, name: str | None) -> int:
    from service.container import open_services
    from service.errors import ServiceError

    settings = Settings()
    services = await open_services(settings)
    try:
        if action == "create":
            assert name is not None
            agent, key = await services.agents.create(name)
            print(f"created agent {agent.name!r}; its API key, shown only now:")
            print(key)
        elif action == "list":
            for record in await services.agents.list():
                state = (
                    f"revoked {record.revoked_at.isoformat()}" if record.revoked_at else "active"
                )
                print(f"{record.name}\t{state}\tcreated {record.created_at.isoformat()}")
        elif action == "revoke":
            assert name is not None
            await services.agents.revoke(name)
            print(f"revoked agent {name!r}")
    except ServiceError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await services.close()
    return 0


def _agents(args: argparse.Namespace) -> int:
    settings, embedded = _settings_with_stores()
    try:
        asyncio.run(_migrate(settings))
        return asyncio.run(_with_agents(args.action, getattr(args, "name", None)))
    finally:
        if embedded is not None:
            embedded.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="support-pin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    serve.add_argument(
        "--graceful-timeout", type=int, default=20, help="seconds in-flight requests get on SIGTERM"
    )
    serve.set_defaults(func=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=_migrate_cmd)

    agents = commands.add_parser("agents", help="manage support agents and their API keys")
    agent_commands = agents.add_subparsers(dest="action", required=True)
    create = agent_commands.add_parser("create", help="create an agent; prints its API key once")
    create.add_argument("name")
    agent_commands.add_parser("list", help="list agents")
    revoke = agent_commands.add_parser("revoke", help="revoke an agent's key at once")
    revoke.add_argument("name")
    agents.set_defaults(func=_agents)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
