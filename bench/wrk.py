"""Run `wrk` with one of the Lua scripts in bench/lua and read its figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent / "lua"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run. Latencies in milliseconds; `non_2xx` counts answers with status >= 400
    (wrk's status errors: the service sends no 1xx/3xx on these routes); `socket_errors` are
    connect/read/write failures and timeouts."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed (bench/run installs it with apt-get)")
    return path


def start_wrk(
    url: str,
    script: str,
    *,
    connections: int,
    threads: int,
    duration: float,
    env: dict[str, str],
) -> subprocess.Popen[str]:
    """Start wrk in the background (the sign-in storm runs beside another wrk)."""
    threads = max(1, min(threads, connections))
    args = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    full_env = {
        **os.environ,
        **env,
        "BENCH_LUA_DIR": str(LUA_DIR),
        "BENCH_THREADS": str(threads),
        "BENCH_CONNECTIONS": str(connections),
    }
    return subprocess.Popen(  # noqa: S603 (fixed arguments, no shell)
        args, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_wrk(process: subprocess.Popen[str], timeout: float) -> WrkResult:
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {stderr.strip()}")
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line.removeprefix("BENCH_JSON "))
            break
    else:
        raise RuntimeError(f"wrk printed no figures: {stdout.strip()} {stderr.strip()}")
    duration_s = raw["duration_us"] / 1e6
    return WrkResult(
        requests=raw["requests"],
        duration_s=round(duration_s, 3),
        rps=round(raw["requests"] / duration_s, 1) if duration_s else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=round(raw["mean_us"] / 1000, 3),
        non_2xx=raw["errors_status"],
        socket_errors=raw["errors_connect"]
        + raw["errors_read"]
        + raw["errors_write"]
        + raw["errors_timeout"],
    )


def run_wrk(
    url: str,
    script: str,
    *,
    connections: int,
    threads: int,
    duration: float,
    env: dict[str, str],
) -> WrkResult:
    process = start_wrk(
        url, script, connections=connections, threads=threads, duration=duration, env=env
    )
    return finish_wrk(process, timeout=duration + 60)
