"""The benchmark's arithmetic (bench/main.py, bench/report.py): the median round, the scale
run's ratio and its table. No servers."""

from __future__ import annotations

from typing import Any

from bench.main import ROUND_RUNS, median_p99_run, median_rounds, ratio_to_mean
from bench.report import ENDPOINT_LABELS, scale_table


def _round(
    healthz: float, issue: float, verify: float, repeat: float = 500.0
) -> dict[str, dict[str, Any]]:
    return {
        "healthz": {"rps": healthz, "cpu_us_per_request": 400.0},
        "issue_pin": {"rps": issue, "cpu_us_per_request": 600.0},
        "verify_pin": {"rps": verify, "cpu_us_per_request": 800.0},
        "verification_repeat": {"rps": repeat, "cpu_us_per_request": 1000.0},
    }


def test_each_endpoint_reports_its_median_round_against_that_rounds_baseline() -> None:
    rounds = [_round(2000, 1400, 1000), _round(2500, 1500, 1500), _round(1000, 700, 650)]

    chosen = median_rounds(rounds)

    # Issuance ratios 0.70, 0.60, 0.70: a median of 0.70, from round 1 (first of the ties).
    assert chosen["issue_pin"]["round_ratios"] == [0.7, 0.6, 0.7]
    assert chosen["issue_pin"]["ratio_to_baseline"] == 0.7
    # Verification ratios 0.50, 0.60, 0.65: round 2, whose own baseline was 2,500 req/s.
    assert chosen["verify_pin"]["round"] == 2
    assert chosen["verify_pin"]["ratio_to_baseline"] == 0.6
    assert chosen["verify_pin"]["rps"] == 1500
    assert chosen["verify_pin"]["cpu_ratio_to_baseline"] == 2.0
    # The baseline's median round by requests per second: round 1 (2,000).
    assert chosen["healthz"]["round"] == 1
    assert chosen["healthz"]["ratio_to_baseline"] == 1.0


def test_the_repeated_verification_mix_has_a_median_round_of_its_own() -> None:
    rounds = [
        _round(2000, 1400, 1000, repeat=1600),
        _round(2500, 1500, 1500, repeat=1000),
        _round(1000, 700, 650, repeat=700),
    ]

    chosen = median_rounds(rounds)

    # Ratios 0.80, 0.40, 0.70: round 3, though verification's median round is round 2.
    assert chosen["verification_repeat"]["round_ratios"] == [0.8, 0.4, 0.7]
    assert chosen["verification_repeat"]["round"] == 3
    assert chosen["verification_repeat"]["ratio_to_baseline"] == 0.7
    assert chosen["verification_repeat"]["cpu_ratio_to_baseline"] == 2.5
    assert chosen["verify_pin"]["round"] == 2


def test_every_round_run_has_a_label_in_the_report() -> None:
    assert set(ROUND_RUNS) <= set(ENDPOINT_LABELS)


def test_with_an_even_number_of_rounds_the_lower_middle_one_is_reported() -> None:
    rounds = [_round(2000, 1400, 1000), _round(2000, 1000, 1200)]

    chosen = median_rounds(rounds)

    assert chosen["issue_pin"]["ratio_to_baseline"] == 0.5
    assert chosen["verify_pin"]["ratio_to_baseline"] == 0.5


def test_the_scale_ratio_is_taken_against_the_mean_of_the_runs_before_and_after() -> None:
    # The machine slowed down between the small run and the large one, and stayed slow.
    assert ratio_to_mean(41.2, 33.4, 41.0) == round(41.2 / 37.2, 3)
    assert ratio_to_mean(41.2, 0.0, 0.0) is None


def test_a_scale_case_reports_its_run_of_median_p99() -> None:
    runs = [
        {"p99_ms": 31.2, "rps": 6051.0},  # a stall of the machine during this one
        {"p99_ms": 19.4, "rps": 6100.0},
        {"p99_ms": 19.1, "rps": 6010.0},
    ]
    chosen = median_p99_run(runs)
    assert chosen["p99_ms"] == 19.4
    assert chosen["rps"] == 6100.0
    assert chosen["p99_runs_ms"] == [31.2, 19.4, 19.1]
    assert median_p99_run(runs[:2])["p99_ms"] == 19.4  # even: the lower middle one


def test_the_scale_table_shows_every_run_and_reads_older_results() -> None:
    def run(pins: int, p99: float) -> dict[str, Any]:
        return {
            "active_pins": pins,
            "rps": 3000.0,
            "p50_ms": 20.0,
            "p99_ms": p99,
            "cpu_us_per_request": 350.0,
            "redis_cpu_us_per_request": 60.4,
        }

    script = {"calls": 2000, "p50_us": 90.0, "p99_us": 200.0}
    scale: dict[str, Any] = {
        "small": run(1_000, 33.4),
        "large": run(1_000_000, 41.2),
        "small_after": run(1_000, 41.0),
        "bytes_per_pin": 188.0,
        "loaded_pins": 999_000,
        "p99_ratio": 1.108,
        "script_small": script,
        "script_small_after": script,
        "script_large": script,
        "script_p99_ratio": 1.0,
    }
    scale["large"]["p99_runs_ms"] = [55.0, 41.2, 40.9]
    table = scale_table(scale)
    assert "| 1,000 (again, after) | 3,000 | 20.0 | 41.0 | 350 | 60 |" in table
    assert "| 1,000,000 | 3,000 | 20.0 | 41.2 (runs: 55.0, 41.2, 40.9) | 350 | 60 |" in table
    assert "mean p99 of the two runs at 1,000: 1.11" in table
    # A JSON file written before the run after the large one, the CPU figures and the runs
    # per case existed.
    del scale["small_after"], scale["large"]["p99_runs_ms"]
    for name in ("small", "large"):
        del scale[name]["cpu_us_per_request"], scale[name]["redis_cpu_us_per_request"]
    older = scale_table(scale)
    assert "again, after" not in older
    assert "| 1,000,000 | 3,000 | 20.0 | 41.2 | – | – |" in older
    assert "p99 at 1,000,000 / p99 at 1,000: 1.11" in older
