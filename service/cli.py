"""`support-pin`: run the service, apply migrations, manage agents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pydantic import ValidationError

from service.embedded import EmbeddedStores, start_embedded
from service.logs import configure_logging
from service.settings import Settings
from service.staff import ROLES

log = logging.getLogger("support_pin.cli")

if TYPE_CHECKING:
    from hypercorn.config import Config

DEMO_EMAIL = "demo@example.com"
DEMO_AGENT = "demo-agent"
DEMO_ADMIN = "admin@example.com"
# Connections the kernel queues for the server to accept.
LISTEN_BACKLOG = 2048


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

    if not settings.database_url:  # _settings_with_stores sets it
        raise RuntimeError("DATABASE_URL is not set")
    return await migrate(settings.database_url)


async def _ensure_demo(settings: Settings) -> None:
    """On an embedded store's first start: a demo account and agent, credentials printed once."""
    from service.container import open_services
    from service.errors import AgentExists, EmailTaken, StaffExists
    from service.staff import setup_url

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
        try:
            admin = await services.staff.add(DEMO_ADMIN, "Demo Admin", "admin", actor="cli")
            admin_link = setup_url(settings.public_url, admin.setup_token)
        except StaffExists:
            admin_link = "(exists already)"
        print(
            "\nFirst start: created a demo account, a demo API key and a demo admin "
            "(shown only this once)\n"
            f"  account email:    {DEMO_EMAIL}\n"
            f"  account password: {password}\n"
            f"  API key name:     {DEMO_AGENT}\n"
            f"  API key:          {key}\n"
            f"  admin {DEMO_ADMIN} sets up here (24 hours): {admin_link}\n",
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


def _fail(message: str, status: int = 1) -> NoReturn:
    """One line on stderr, then exit."""
    print(f"support-pin: {message}", file=sys.stderr)
    raise SystemExit(status)


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _exit_at_once(signum: int, _: object) -> None:
    raise SystemExit(0)


def _listen(host: str, port: int) -> socket.socket:
    """The service's socket, bound first: a busy port fails before anything else is done."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {_reason(exc)}")


def _start_metrics_listener(host: str, port: int) -> None:
    """/metrics on a port of its own, answered by a thread of this process: the one worker,
    or the supervisor, which sums what the workers write to the multiprocess folder."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    from service.metrics import MULTIPROC_ENV

    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port} for METRICS_PORT: {_reason(exc)}")


def server_config(settings: Settings, graceful_timeout: int) -> Config:
    """hypercorn's documented options: the HTTP edge of SECURITY-RULES.md, no Server header,
    and its error log through ours (the access log is api/middleware.py's)."""
    from hypercorn.config import Config

    config = Config()
    config.h11_max_incomplete_size = settings.http_max_head_bytes
    config.h2_max_header_list_size = settings.http_max_head_bytes
    # hypercorn closes a connection that has no request under way after this long, which
    # covers the time to send a complete head.
    config.keep_alive_timeout = settings.http_head_timeout_seconds
    config.graceful_timeout = graceful_timeout
    config.backlog = LISTEN_BACKLOG
    config.include_server_header = False
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def _serve_worker(config: Config, sock: socket.socket) -> None:
    """The app on the listening socket until SIGTERM or SIGINT, which let the requests in
    flight finish (for up to `serve --graceful-timeout` seconds)."""
    import uvloop
    from hypercorn.asyncio import serve

    from api.serving import close_streams, create_served_app

    config.bind = [f"fd://{sock.detach()}"]
    app = create_served_app()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)

        async def shutdown_trigger() -> None:
            # hypercorn's documented hook: on the signal, open event streams (which never
            # finish by themselves) end first, so the graceful wait is for real requests.
            await stop.wait()
            close_streams()

        await serve(app, config, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]  # Starlette's ASGI types are not hypercorn's

    uvloop.run(main())


def _serve_workers(config: Config, sock: socket.socket, workers: int) -> int:
    """Worker processes sharing the listening socket. A signal is passed to each, and each
    finishes its own requests in flight; a worker that exits by itself stops the others."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_serve_worker, args=(config, sock), name=f"worker-{number}")
        for number in range(1, workers + 1)
    ]
    signalled = False

    def stop_workers() -> None:
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                process.terminate()

    def on_signal(signum: int, _: object) -> None:
        nonlocal signalled
        signalled = True
        stop_workers()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for process in processes:
        process.start()
    sock.close()  # the workers hold it now, and close it as they stop
    multiprocessing.connection.wait([process.sentinel for process in processes])
    stop_workers()
    for process in processes:
        process.join(config.graceful_timeout + 10)
        if process.exitcode is None:
            process.kill()
            process.join()
    return 0 if signalled else 1


def _serve(args: argparse.Namespace) -> int:
    sock = _listen(args.host, args.port)
    embedded: EmbeddedStores | None = None
    metrics_dir = _multiprocess_metrics_dir(args.workers)
    # Until the server takes the signals over, SIGTERM and SIGINT exit through the clean-up
    # below (the embedded servers included).
    signal.signal(signal.SIGTERM, _exit_at_once)
    signal.signal(signal.SIGINT, _exit_at_once)
    try:
        settings, embedded = _settings_with_stores()
        if settings.metrics_port is not None:
            _start_metrics_listener(args.host, settings.metrics_port)
        if not args.no_migrate:
            asyncio.run(_migrate(settings))
        if embedded is not None:
            asyncio.run(_ensure_demo(settings))
        config = server_config(settings, args.graceful_timeout)
        if args.workers == 1:
            _serve_worker(config, sock)
            return 0
        return _serve_workers(config, sock, args.workers)
    finally:
        sock.close()
        if embedded is not None:
            embedded.stop()
        if metrics_dir is not None:
            metrics_dir.cleanup()


def _migrate_cmd(_: argparse.Namespace) -> int:
    settings, embedded = _settings_with_stores()
    try:
        applied = asyncio.run(_migrate(settings))
    finally:
        if embedded is not None:
            embedded.stop()
    print(f"applied {len(applied)} migration(s)" + (f": {applied}" if applied else ""))
    return 0


async def _with_agents(action: str, name: str) -> int:
    from service.container import open_services
    from service.errors import ServiceError

    settings = Settings()
    services = await open_services(settings)
    try:
        if action == "create":
            try:
                agent, key = await services.agents.create(name)
            except ValueError as exc:
                print(f"error: invalid agent name: {exc}", file=sys.stderr)
                return 2
            print(f"created agent {agent.name!r}; its API key, shown only now:")
            print(key)
        elif action == "list":
            for record in await services.agents.list():
                state = (
                    f"revoked {record.revoked_at.isoformat()}" if record.revoked_at else "active"
                )
                print(f"{record.name}\t{state}\tcreated {record.created_at.isoformat()}")
        elif action == "revoke":
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
        # `list` takes no name.
        return asyncio.run(_with_agents(args.action, getattr(args, "name", "")))
    finally:
        if embedded is not None:
            embedded.stop()


async def _with_staff(args: argparse.Namespace, settings: Settings) -> int:
    from service import emails
    from service.accounts import normalize_email
    from service.container import open_services
    from service.errors import ServiceError
    from service.staff import setup_url

    email = ""
    if args.action == "add":
        # The strict spelling, as POST /v1/admin/staff takes it (the lookup's lenient one
        # would store any text, or fail on the table's check with a traceback).
        try:
            email = emails.normalize_email(args.email)
        except emails.InvalidEmailAddress as exc:
            print(f"error: invalid email: {exc}", file=sys.stderr)
            return 2
    services = await open_services(settings)
    try:
        if args.action == "add":
            added = await services.staff.add(email, args.name, args.role, actor="cli")
            print(
                f"added {added.staff.email} ({added.staff.role}); their set-up link, single "
                "use and valid 24 hours, shown only now:"
            )
            print(setup_url(settings.public_url, added.setup_token))
            return 0
        if args.action == "list":
            for staff in await services.staff.list():
                state = "disabled" if staff.disabled else "active"
                print(f"{staff.email}\t{staff.name}\t{staff.role}\t{staff.source}\t{state}")
            return 0
        found = await services.staff.by_email(normalize_email(args.email))
        if found is None:
            print(f"error: no staff member {args.email!r}", file=sys.stderr)
            return 1
        if args.action == "disable":
            await services.staff.update(found.id, disabled=True, actor="cli")
            print(f"disabled {found.email}; their sessions have ended")
        elif args.action == "enable":
            await services.staff.update(found.id, disabled=False, actor="cli")
            print(f"enabled {found.email}")
        elif args.action == "setup-link":
            again = await services.staff.reissue_setup(found.id, actor="cli")
            print(
                f"{found.email}'s password and authenticator were cleared and their sessions "
                "ended; their new set-up link, single use and valid 24 hours, shown only now:"
            )
            print(setup_url(settings.public_url, again.setup_token))
        elif args.action == "role":
            await services.staff.update(found.id, role=args.role, actor="cli")
            ended = "; their sessions have ended" if found.role != args.role else " already"
            print(f"{found.email} is now {args.role}{ended}")
    except ServiceError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await services.close()
    return 0


def _staff(args: argparse.Namespace) -> int:
    settings, embedded = _settings_with_stores()
    try:
        asyncio.run(_migrate(settings))
        return asyncio.run(_with_staff(args, settings))
    finally:
        if embedded is not None:
            embedded.stop()


def _staff_name(value: str) -> str:
    if not 1 <= len(value) <= 100 or not value.isprintable():
        raise argparse.ArgumentTypeError("1 to 100 printable characters")
    return value


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

    staff = commands.add_parser("staff", help="manage support staff (people with a role)")
    staff_commands = staff.add_subparsers(dest="action", required=True)
    add = staff_commands.add_parser("add", help="add a staff member; prints their set-up link")
    add.add_argument("email")
    add.add_argument("--name", required=True, type=_staff_name)
    add.add_argument("--role", required=True, choices=ROLES)
    staff_commands.add_parser("list", help="list staff")
    for action, text in (("disable", "disable (ends their sessions)"), ("enable", "enable")):
        staff_commands.add_parser(action, help=text).add_argument("email")
    staff_commands.add_parser(
        "setup-link", help="a new set-up link (lost authenticator or password); prints it"
    ).add_argument("email")
    role = staff_commands.add_parser("role", help="change a role (ends their sessions)")
    role.add_argument("email")
    role.add_argument("role", choices=ROLES)
    staff.set_defaults(func=_staff)
    return parser


def _invalid_settings(exc: ValidationError) -> str:
    """The first invalid setting and why, in one line (never its value)."""
    error = exc.errors()[0]
    reason = error["msg"].removeprefix("Value error, ")
    if error["loc"]:
        name = str(error["loc"][0]).upper()
        line = f"invalid setting {name}: {reason.removeprefix(name + ' ')}"
    else:
        line = f"invalid settings: {reason}"
    others = exc.error_count() - 1
    return line + (f" (and {others} more)" if others else "")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        _fail(_invalid_settings(exc), status=2)
    configure_logging(settings.log_level, settings.log_format)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
