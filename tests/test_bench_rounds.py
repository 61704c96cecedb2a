"""The benchmark's choice of the median round (bench/main.py): pure arithmetic, no servers."""

from __future__ import annotations

from typing import Any

from bench.main import median_rounds


def _round(healthz: float, issue: float, verify: float) -> dict[str, dict[str, Any]]:
    return {
        "healthz": {"rps": healthz, "cpu_us_per_request": 400.0},
        "issue_pin": {"rps": issue, "cpu_us_per_request": 600.0},
        "verify_pin": {"rps": verify, "cpu_us_per_request": 800.0},
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


def test_with_an_even_number_of_rounds_the_lower_middle_one_is_reported() -> None:
    rounds = [_round(2000, 1400, 1000), _round(2000, 1000, 1200)]

    chosen = median_rounds(rounds)

    assert chosen["issue_pin"]["ratio_to_baseline"] == 0.5
    assert chosen["verify_pin"]["ratio_to_baseline"] == 0.5
