"""`bench/run`: seed, start the service, drive it with wrk, report (see docs/performance.md).

Each endpoint is measured in the same run as `/healthz`, and reported as a ratio to it:
absolute figures drift on shared machines, ratios much less. The runs go in rounds of
`/healthz`, issuance and the two verification mixes, each ratio against its own round's
`/healthz`, and the report shows each endpoint's median round."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from bench import live, report
from bench.server import ServiceProcess
from bench.stores import (
    SeedRow,
    delete_prefix,
    load_pins,
    other_pins,
    own_database,
    random_pins,
    seed_accounts,
    seed_pins,
    seed_sessions,
    write_data_file,
)
from bench.wrk import WrkResult, finish_wrk, run_wrk, start_wrk
from service.container import Services, open_services
from service.redis_store import make_client
from service.settings import RATE_LIMIT_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent
# Every rate limit is raised so the run measures the work, not the 429s; the limit checks
# themselves still run.
RAISED_LIMIT = "1000000/second"
# Checks per account in the repeated verification mix: its right PIN, then wrong ones. The
# wrong ones stay below the account's lock (`account_max_failures`).
REPEAT_TRIES = 5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts to seed")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument(
        "--storm-probe-connections",
        type=int,
        default=16,
        help="connections polling /healthz during the sign-in storm",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        # Enough for a median that one disturbed round on a shared machine cannot move.
        default=5,
        help="rounds of baseline, issuance and both verification mixes; each endpoint "
        "reports its median",
    )
    parser.add_argument("--scale-pins", type=int, default=1_000_000, help="0 skips the scale run")
    parser.add_argument("--scale-small", type=int, default=1_000, help="PINs of the small case")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="seconds-long run that proves it works (CI), the live part in its small size too",
    )
    parser.add_argument("--label", default="", help="free text stored in the JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a database from which the run may create and drop its own",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    live.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.accounts, args.duration, args.rounds = 200, 2.0, 1
        args.scale_pins, args.scale_small = 2_000, 200
    args.scale_small = min(args.scale_small, args.accounts)
    return args


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        services: Services,
        server: ServiceProcess,
        data_path: Path,
    ) -> None:
        self.args = args
        self.data_path = data_path
        self.services = services
        self.server = server
        self.url = server.url
        self.env: dict[str, str] = {}
        self.runs: dict[str, dict[str, Any]] = {}

    def wrk(
        self, script: str, *, connections: int | None = None, duration: float | None = None
    ) -> WrkResult:
        return run_wrk(
            self.url,
            script,
            connections=connections or self.args.connections,
            threads=self.args.threads,
            duration=duration or self.args.duration,
            env=self.env,
        )

    def measure(self, name: str, script: str) -> None:
        """One endpoint run, with the service's CPU time per request: unlike req/s, that
        figure hardly moves when other programs take CPU from the service."""
        before = self.server.cpu_seconds()
        result = self.wrk(script)
        after = self.server.cpu_seconds()
        cpu_us = None
        if before is not None and after is not None and result.requests:
            cpu_us = round((after - before) / result.requests * 1e6, 1)
        self.record(name, result, self.args.connections, cpu_us_per_request=cpu_us)

    async def round(
        self, accounts: list[Any], tokens: list[str], password: str, db_url: str
    ) -> dict[str, dict[str, Any]]:
        """One round: the baseline, then issuance, then both verification mixes, back to
        back, so each ratio compares runs minutes apart at most. Returns the round's runs."""
        self.measure("healthz", "healthz.lua")
        self.measure("issue_pin", "issue_pin.lua")
        # The issuance run replaced every PIN: give the verifiers PINs they can know, on
        # enough accounts that each mix makes one pass over them at most.
        await add_verification_accounts(self, accounts, tokens, password, db_url)
        for name, script, per_account in (
            ("verify_pin", "verify_pin.lua", 1),
            ("verification_repeat", "verify_repeat.lua", REPEAT_TRIES),
        ):
            # Fresh PINs and no failures counted: the mix before left used PINs behind.
            await reseed(self.services, accounts, tokens, self.data_path)
            before = await verification_outcomes(db_url)
            self.measure(name, script)
            after = await verification_outcomes(db_url)
            run = self.runs[name]
            run["accounts"] = len(accounts)
            # What the run's answers were: the audit rows it added.
            run["outcomes"] = {
                k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)
            }
            if run["requests"] > per_account * len(accounts):
                print(
                    f"  warning: {name}: {run['requests']:,} verifications for "
                    f"{len(accounts):,} accounts: a second pass met used PINs "
                    "(see the outcomes); raise --accounts",
                    flush=True,
                )
        return {name: self.runs.pop(name) for name in ROUND_RUNS}

    def record(
        self,
        name: str,
        result: WrkResult,
        connections: int,
        cpu_us_per_request: float | None = None,
    ) -> None:
        run = {
            **result.as_dict(),
            "connections": connections,
            "cpu_us_per_request": cpu_us_per_request,
        }
        self.runs[name] = run
        cpu = f"  cpu {cpu_us_per_request:6.0f} us/req" if cpu_us_per_request else ""
        print(
            f"  {name:<22} {result.rps:>9,.0f} req/s  p50 {result.p50_ms:6.1f}  "
            f"p99 {result.p99_ms:7.1f}  p99.9 {result.p999_ms:7.1f} ms  "
            f"non-2xx {result.non_2xx}  errors {result.socket_errors}{cpu}",
            flush=True,
        )


# The runs of a round (see `Bench.round`); the other runs happen once.
ROUND_RUNS = ("healthz", "issue_pin", "verify_pin", "verification_repeat")


def _ratio(value: float | None, baseline: float | None) -> float | None:
    return round(value / baseline, 2) if value and baseline else None


def median_rounds(per_round: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per endpoint, the run of its median round: by requests per second for the baseline,
    by the ratio to the same round's baseline for the others (with an even number of rounds,
    the lower of the middle two). Every round's ratio is kept in `round_ratios`."""
    chosen: dict[str, dict[str, Any]] = {}
    for name in ROUND_RUNS:
        if name == "healthz":
            ratios = [1.0 for _ in per_round]
            keys = [r["healthz"]["rps"] for r in per_round]
        else:
            ratios = [r[name]["rps"] / r["healthz"]["rps"] for r in per_round]
            keys = ratios
        pick = sorted(range(len(per_round)), key=keys.__getitem__)[(len(per_round) - 1) // 2]
        run = per_round[pick]
        chosen[name] = {
            **run[name],
            "round": pick + 1,
            "ratio_to_baseline": round(ratios[pick], 3),
            "cpu_ratio_to_baseline": _ratio(
                run[name]["cpu_us_per_request"], run["healthz"]["cpu_us_per_request"]
            ),
            "round_ratios": [round(x, 3) for x in ratios],
        }
    return chosen


# The verification run is sized from the fastest run so far (no endpoint outruns /healthz),
# with this much to spare.
VERIFY_HEADROOM = 1.25


async def add_verification_accounts(
    bench: Bench,
    accounts: list[Any],
    tokens: list[str],
    password: str,
    db_url: str,
    *,
    fastest: float = 0.0,
) -> None:
    """Extend `accounts` (and `tokens`, with "-": no session) so that a verification run
    meets every account in one pass at most. A second pass would verify PINs the first one
    used up, which is cheaper than the mix it stands for, and would add failures towards the
    account's lock. Sized by the fastest run so far (or `fastest` req/s, if more); the
    repeated mix needs fewer accounts than the other one."""
    fastest = max([fastest, *(run["rps"] for run in bench.runs.values())])
    extra = math.ceil(fastest * bench.args.duration * VERIFY_HEADROOM) - len(accounts)
    if extra <= 0:
        return
    more = await seed_accounts(db_url, extra, password, first=len(accounts))
    accounts += more
    tokens += ["-"] * extra
    # The disk writes of the seeding happen now, not during the next measured run.
    await asyncio.to_thread(os.sync)
    print(f"  {extra:,} more accounts for the verification run, {len(accounts):,} in all")


async def verification_outcomes(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            """SELECT coalesce(reason, type) AS outcome, count(*) AS n FROM audit_events
               WHERE type IN ('verified', 'verify_failed') GROUP BY 1"""
        )
    finally:
        await conn.close()
    return {row["outcome"]: row["n"] for row in rows}


async def redis_used_memory(services: Services) -> int:
    info = await services.redis.client.info("memory")
    return int(info["used_memory"])


async def redis_cpu_seconds(services: Services) -> float:
    """The Redis server's CPU time so far (user + system, from INFO)."""
    info = await services.redis.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# Runs per case of the scale run; each case reports its run of median p99: one stall of the
# machine can move a run's p99 a lot, but not the median of three.
SCALE_RUNS = 3


async def scale_verification(
    bench: Bench, accounts: list[Any], tokens: list[str], active_pins: int, label: str
) -> dict[str, Any]:
    """One case of the scale run: `SCALE_RUNS` verification runs of half the duration each,
    each on fresh PINs for `accounts`, with the service's and Redis's CPU time per request
    (Redis's work grows with its keyspace, if anything does). Returns the run of median p99,
    with every run's p99."""
    runs = []
    for _ in range(SCALE_RUNS):
        await reseed(bench.services, accounts, tokens, bench.data_path)
        redis_before = await redis_cpu_seconds(bench.services)
        service_before = bench.server.cpu_seconds()
        result = bench.wrk("verify_pin.lua", duration=max(1.0, bench.args.duration / 2))
        service_after = bench.server.cpu_seconds()
        redis_after = await redis_cpu_seconds(bench.services)
        per_request = 1e6 / result.requests if result.requests else 0.0
        service_us = (
            round((service_after - service_before) * per_request, 1)
            if service_before is not None and service_after is not None
            else None
        )
        runs.append(
            {
                "active_pins": active_pins,
                **result.as_dict(),
                "cpu_us_per_request": service_us,
                "redis_cpu_us_per_request": round((redis_after - redis_before) * per_request, 1),
            }
        )
    chosen = median_p99_run(runs)
    print(
        f"  scale: {active_pins:,} active PINs{label}: {chosen['rps']:,.0f} req/s, "
        f"p99 {chosen['p99_ms']:.1f} ms{report.p99_runs(chosen)}, "
        f"CPU per request: service {chosen['cpu_us_per_request']} us, "
        f"Redis {chosen['redis_cpu_us_per_request']} us"
    )
    return chosen


def median_p99_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median p99 (the lower middle one of an even number), with every run's p99
    in `p99_runs_ms` (in the order they ran)."""
    ordered = sorted(runs, key=lambda run: run["p99_ms"])
    return {**ordered[(len(runs) - 1) // 2], "p99_runs_ms": [run["p99_ms"] for run in runs]}


async def scale_run(bench: Bench, accounts: list[Any], tokens: list[str]) -> dict[str, Any]:
    """Verification latency with few and with very many active PINs, and memory per PIN."""
    args, services = bench.args, bench.services
    client, keys = services.redis.client, services.redis.keys
    # Start from exactly `scale_small` active PINs: drop every account's PIN state first.
    # (The memory figure is a used_memory delta, which includes Redis's key tables: they
    # double when the key count passes a power of two, so keys left over would move it.)
    for start in range(0, len(accounts), 10_000):
        chunk = accounts[start : start + 10_000]
        await client.unlink(*(key for a in chunk for key in keys.pin_state(a.id)))
    small_accounts = accounts[: args.scale_small]
    small = await scale_verification(bench, small_accounts, tokens, args.scale_small, "")
    calls = min(2 * args.scale_small, 4_000)
    small_script = await script_latency(services, [a.id for a in small_accounts], calls)

    bulk = args.scale_pins - args.scale_small
    before = await redis_used_memory(services)
    started = time.monotonic()
    ids = [uuid.uuid4() for _ in range(bulk)]
    await load_pins(services, ids, random_pins(services, bulk))
    load_seconds = time.monotonic() - started
    await asyncio.sleep(1)  # let an incremental rehash of the keyspace finish
    after = await redis_used_memory(services)
    per_pin = (after - before) / bulk
    print(f"  scale: loaded {bulk:,} PINs in {load_seconds:.1f} s, {per_pin:.0f} bytes per PIN")

    large_script = await script_latency(services, ids, calls)
    # Fresh PINs for the same callers before each run.
    large = await scale_verification(bench, small_accounts, tokens, args.scale_pins, "")
    deleted = 0
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        deleted += await client.unlink(*(keys.pin(i) for i in chunk))
    # Back at the small size: timed again, since the machine may have got slower or faster
    # meanwhile for reasons of its own (the other programs on it); the small figure is the
    # mean of the two. Over HTTP too: at 64 connections the p99 follows the run's req/s,
    # which drifts either way between runs minutes apart.
    small_again = await script_latency(services, [a.id for a in small_accounts], calls)
    small_after = await scale_verification(
        bench, small_accounts, tokens, args.scale_small, " again"
    )
    return {
        "loaded_pins": bulk,
        "load_seconds": round(load_seconds, 2),
        "used_memory_before": before,
        "used_memory_after": after,
        "bytes_per_pin": round(per_pin, 1),
        "small": small,
        "large": large,
        "small_after": small_after,
        "p99_ratio": ratio_to_mean(large["p99_ms"], small["p99_ms"], small_after["p99_ms"]),
        "script_small": small_script,
        "script_small_after": small_again,
        "script_large": large_script,
        "script_p99_ratio": ratio_to_mean(
            large_script["p99_us"], small_script["p99_us"], small_again["p99_us"]
        ),
        "deleted_keys": deleted,
    }


def ratio_to_mean(value: float, before: float, after: float) -> float | None:
    """`value` against the mean of the same measurement taken before and after it: the
    machine's drift between runs minutes apart moves either way, and a ratio to the earlier
    run alone would count it as the difference between the two cases."""
    mean = (before + after) / 2
    return round(value / mean, 3) if mean else None


async def script_latency(
    services: Services, account_ids: list[uuid.UUID], calls: int
) -> dict[str, Any]:
    """The verify script alone, one call at a time (no HTTP, no queueing, no audit row): what
    Redis's keyspace size could slow down. Called as `PinService.check` calls it, with a wrong
    PIN, on active PINs in random order, each at most ceil(calls / PINs) times: fewer than
    `max_attempts`, so none dies and every call does the same work."""
    pins, limits, keys = services.pins, services.limits, services.redis.keys
    verify = services.redis.script("verify_pin")
    if -(-calls // len(account_ids)) >= pins.max_attempts:
        raise ValueError("too many calls per PIN: some would use their PIN up")
    rng = random.Random(7)  # noqa: S311 (picks keys to time, not a secret)
    order = rng.sample(account_ids, min(calls, len(account_ids)))
    timings = []
    for n in range(calls):
        account_id = order[n % len(order)]
        limit = limits.verification_hit(limits.verification_subject(account_id, ""))
        script_keys = [limit.key, *keys.pin_state(account_id)]
        args: list[bytes | str | int] = [
            *limit.args,
            pins.digest(account_id, ""),  # an empty PIN: its digest is no issued PIN's
            pins.max_attempts,
            pins.account_max_failures,
            # The lock's and the failure counter's lifetimes 1 s: none outlives the run.
            1000,
            1000,
        ]
        started = time.perf_counter()
        await verify(keys=script_keys, args=args)
        timings.append(time.perf_counter() - started)
    timings.sort()
    return {
        "calls": calls,
        "p50_us": round(timings[len(timings) // 2] * 1e6, 1),
        "p99_us": round(timings[int(len(timings) * 0.99)] * 1e6, 1),
    }


async def reseed(
    services: Services, accounts: list[Any], tokens: list[str], data_path: Path
) -> list[SeedRow]:
    """Fresh current and replaced PINs for `accounts`, with no failures counted against them,
    and the data file the wrk scripts read."""
    pins = random_pins(services, len(accounts))
    old = other_pins(services, pins)
    await load_pins(services, (a.id for a in accounts), pins, replace=True)
    rows = [
        SeedRow(token, a.email, pin, o)
        for a, token, pin, o in zip(accounts, tokens, pins, old, strict=False)
    ]
    write_data_file(data_path, rows)
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"bench:{secrets.token_hex(4)}:"
    secret_key = secrets.token_urlsafe(36)
    password = "bench-" + secrets.token_hex(12)
    data_path = args.out / f"{stamp}-data.tsv"
    started_at = datetime.now(UTC).isoformat(timespec="seconds")

    # The benchmark's own services get the raised limits too: the scale run's script calls
    # count the limit as the service does.
    raised: dict[str, Any] = {f"rate_limit_{name}": RAISED_LIMIT for name in RATE_LIMIT_NAMES}

    async with own_database(args.postgres_url) as db_url:
        env = {
            "ENVIRONMENT": "production",
            "DATABASE_URL": db_url,
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": prefix,
            "SECRET_KEY": secret_key,
            **{name.upper(): value for name, value in raised.items()},
        }
        settings = Settings(
            environment="production",
            database_url=db_url,
            redis_url=args.redis_url,
            redis_key_prefix=prefix,
            secret_key=secret_key,
            **raised,
        )
        if settings.account_max_failures < REPEAT_TRIES:
            raise SystemExit(
                f"the repeated mix's {REPEAT_TRIES - 1} wrong PINs per account would reach "
                f"ACCOUNT_MAX_FAILURES ({settings.account_max_failures}) and lock accounts"
            )
        services = await open_services(settings)
        try:
            t0 = time.monotonic()
            print(f"seeding {args.accounts:,} accounts ...", flush=True)
            accounts = await seed_accounts(db_url, args.accounts, password)
            _, agent_key = await services.agents.create("bench-agent")
            tokens = await seed_sessions(services, accounts)
            pins, old = await seed_pins(services, accounts)
            rows = [
                SeedRow(t, a.email, p, o)
                for a, t, p, o in zip(accounts, tokens, pins, old, strict=True)
            ]
            write_data_file(data_path, rows)
            print(f"  seeded in {time.monotonic() - t0:.1f} s", flush=True)

            with ServiceProcess(
                env, workers=args.workers, log_path=args.out / f"{stamp}-service.log"
            ) as server:
                bench = Bench(args, services, server, data_path)
                bench.env = {
                    "BENCH_DATA": str(data_path),
                    "BENCH_AGENT_KEY": agent_key,
                    "BENCH_PASSWORD": password,
                    "BENCH_REPEAT_TRIES": str(REPEAT_TRIES),
                }
                print(f"service on {server.url}, {args.workers} worker(s); warming up", flush=True)
                # The first seconds of a fresh server and of wrk's first connections are
                # slower than the rest, and so are a route's first requests. The first
                # round's reseed gives the verifiers fresh PINs.
                warm = bench.wrk("healthz.lua", duration=min(3, args.duration))
                bench.wrk("issue_pin.lua", duration=min(2, args.duration))
                bench.wrk("verify_pin.lua", duration=min(2, args.duration))
                # Accounts for the verification runs, seeded before the first round so their
                # disk writes do not slow its runs. /healthz is the fastest endpoint: its
                # warm-up rate, with room, covers most rounds (one that ran faster adds what
                # it needs).
                await add_verification_accounts(
                    bench, accounts, tokens, password, db_url, fastest=1.5 * warm.rps
                )

                c = args.connections
                per_round: list[dict[str, dict[str, Any]]] = []
                for number in range(1, args.rounds + 1):
                    if args.rounds > 1:
                        print(f"round {number} of {args.rounds}", flush=True)
                    per_round.append(await bench.round(accounts, tokens, password, db_url))
                outcomes = await verification_outcomes(db_url)
                bench.measure("sign_in", "sign_in.lua")

                # Sign-in storm: argon2 on every request, with /healthz polled beside it.
                storm = start_wrk(
                    server.url,
                    "sign_in.lua",
                    connections=c,
                    threads=args.threads,
                    duration=args.duration,
                    env=bench.env,
                )
                probe = bench.wrk(
                    "healthz.lua",
                    connections=args.storm_probe_connections,
                    duration=max(1, args.duration - 1),
                )
                storm_result = finish_wrk(storm, timeout=args.duration + 60)
                bench.record("healthz_during_storm", probe, args.storm_probe_connections)
                bench.runs["sign_in_storm"] = {**storm_result.as_dict(), "connections": c}
                quiet = bench.wrk(
                    "healthz.lua",
                    connections=args.storm_probe_connections,
                    duration=max(1, args.duration - 1),
                )
                bench.runs["healthz_quiet_probe"] = {
                    **quiet.as_dict(),
                    "connections": args.storm_probe_connections,
                }

                scale = None
                if args.scale_pins > 0:
                    scale = await scale_run(bench, accounts, tokens)
        finally:
            await delete_prefix(services.redis.client, prefix)
            await services.close()
            data_path.unlink(missing_ok=True)  # it holds live tokens and PINs

    chosen = median_rounds(per_round)
    baseline = chosen["healthz"]["rps"]
    baseline_cpu = chosen["healthz"]["cpu_us_per_request"]
    endpoints = dict(chosen)
    for name, run in bench.runs.items():
        if name in report.ENDPOINT_LABELS:
            endpoints[name] = {
                **run,
                "ratio_to_baseline": round(run["rps"] / baseline, 3) if baseline else 0.0,
                "cpu_ratio_to_baseline": _ratio(run["cpu_us_per_request"], baseline_cpu),
            }
    extra = {k: v for k, v in bench.runs.items() if k not in report.ENDPOINT_LABELS}
    return {
        "meta": {
            "started_at": started_at,
            "label": args.label,
            "workers": args.workers,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "accounts": args.accounts,
            "duration_s": args.duration,
            "smoke": args.smoke,
            "machine": machine(),
            "git_commit": git_commit(),
        },
        "endpoints": endpoints,
        "extra_runs": extra,
        "rounds": per_round,
        "verification_outcomes": outcomes,
        "scale": scale,
        "file_stem": stamp,
    }


async def run_live_only(args: argparse.Namespace) -> dict[str, Any]:
    """`--live`: the live part alone (bench/live.py), with the run's particulars."""
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    results = await live.run_live(args, stamp)
    return {
        "meta": {
            "started_at": started_at,
            "label": args.label,
            "smoke": args.smoke,
            "live_only": True,
            "machine": machine(),
            "git_commit": git_commit(),
        },
        "live": results,
        "file_stem": stamp,
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def stores_answer(postgres_url: str, redis_url: str) -> bool:
    async def probe() -> None:
        conn = await asyncpg.connect(postgres_url, timeout=2)
        await conn.close()
        client = make_client(redis_url, cluster=False, timeout=2, pool_size=1)
        try:
            await client.ping()
        finally:
            await client.aclose()

    try:
        asyncio.run(probe())
    except (OSError, TimeoutError, asyncpg.PostgresError, RedisError):
        return False
    return True


def cpu_model() -> str | None:
    """The CPU's model (Linux; name, family and model number, since a virtual machine may
    name only the vendor's line): runs on different machines are compared by ratios, and the
    model says why their absolute figures differ."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if not name.strip():
                    break  # the first processor's block is enough
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        return None
    if "model name" not in fields:
        return None
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    return f"{fields['model name']} (family {family}, model {model})"


def git_commit() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 (fixed arguments)
            [git, "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except subprocess.CalledProcessError:
        return None
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with ExitStack() as stack:
        if not stores_answer(args.postgres_url, args.redis_url):
            from service.embedded import start_embedded

            print("PostgreSQL or Redis does not answer: starting embedded ones", flush=True)
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="support-pin-bench-"))
            embedded = start_embedded(Path(tmp))
            stack.callback(embedded.stop)
            args.postgres_url, args.redis_url = embedded.database_url, embedded.redis_url
        if args.live:
            results = asyncio.run(run_live_only(args))
        else:
            results = asyncio.run(run(args))
            if args.smoke:  # the live part in its smoke size too (about 12 s more)
                results["live"] = asyncio.run(live.run_live(args, results["file_stem"]))
    stem = args.out / results.pop("file_stem")
    report.write_json(stem.with_suffix(".json"), results)
    if "endpoints" not in results:  # --live
        print()
        print(live.table(results["live"]))
        print(f"\nwrote {stem}.json")
        return 0
    report.draw_chart(stem.with_suffix(".png"), results)
    print()
    print(report.table(results))
    if results["scale"]:
        print()
        print(report.scale_table(results["scale"]))
    if len(results["rounds"]) > 1:
        print("\nratio to the baseline in each round (the table shows the median round):")
        for name in ROUND_RUNS[1:]:
            ratios = ", ".join(f"{r:.2f}" for r in results["endpoints"][name]["round_ratios"])
            print(f"  {report.ENDPOINT_LABELS[name]}: {ratios}")
    print("\nverification outcomes (audit rows) of the rounds shown:")
    for name in ("verify_pin", "verification_repeat"):
        print(f"  {report.ENDPOINT_LABELS[name]}: {results['endpoints'][name]['outcomes']}")
    print(f"  the warm-up and every round together: {results['verification_outcomes']}")
    if "live" in results:
        print()
        print(live.table(results["live"]))
    print(f"\nwrote {stem}.json and {stem}.png")
    return 0
