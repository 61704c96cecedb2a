"""The benchmark's table, JSON file and PNG chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENDPOINT_LABELS = {
    "healthz": "GET /healthz (baseline)",
    "issue_pin": "POST /v1/me/support-pin",
    "verify_pin": "POST /v1/agent/verifications (benchmark mix)",
    "verification_repeat": "POST /v1/agent/verifications (repeated mix)",
    "sign_in": "POST /v1/auth/token",
    "healthz_during_storm": "GET /healthz during sign-in storm",
}


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the endpoint runs (what docs/performance.md shows)."""
    lines = [
        "| endpoint | req/s | × baseline | p50 ms | p99 ms | p99.9 ms | non-2xx | errors "
        "| CPU µs/req | CPU × baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in results["endpoints"].items():
        cpu = run.get("cpu_us_per_request")
        cpu_ratio = run.get("cpu_ratio_to_baseline")
        lines.append(
            f"| {ENDPOINT_LABELS.get(name, name)} ({run['connections']} conn) "
            f"| {run['rps']:,.0f} | {run['ratio_to_baseline']:.2f} "
            f"| {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['p999_ms']:.1f} "
            f"| {run['non_2xx']} | {run['socket_errors']} "
            f"| {f'{cpu:.0f}' if cpu else '–'} | {f'{cpu_ratio:.2f}' if cpu_ratio else '–'} |"
        )
    return "\n".join(lines)


def _cpu(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def scale_table(scale: dict[str, Any]) -> str:
    small, large = scale["small"], scale["large"]
    script_small, script_large = scale["script_small"], scale["script_large"]
    script_again = scale["script_small_after"]
    # In order: small, large, small again (runs of JSON files written before that have two).
    runs = [(small, ""), (large, "")]
    if "small_after" in scale:
        runs.append((scale["small_after"], " (again, after)"))
    rows = [
        f"| {run['active_pins']:,}{note} | {run['rps']:,.0f} | {run['p50_ms']:.1f} "
        f"| {run['p99_ms']:.1f}{p99_runs(run)} | {_cpu(run.get('cpu_us_per_request'))} "
        f"| {_cpu(run.get('redis_cpu_us_per_request'))} |"
        for run, note in runs
    ]
    versus = "mean p99 of the two runs at" if "small_after" in scale else "p99 at"
    return "\n".join(
        [
            "| active PINs | verify req/s | p50 ms | p99 ms | CPU µs/req: service | Redis |",
            "|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Redis memory per active PIN: {scale['bytes_per_pin']:.0f} bytes "
            f"(used_memory delta over {scale['loaded_pins']:,} PINs); "
            f"p99 at {large['active_pins']:,} / {versus} {small['active_pins']:,}: "
            f"{scale['p99_ratio']:.2f}",
            "verify script alone, one call at a time: "
            f"p50 {script_small['p50_us']:.0f} / p99 {script_small['p99_us']:.0f} µs "
            f"at {small['active_pins']:,} PINs (again after the large case: "
            f"p50 {script_again['p50_us']:.0f} / p99 {script_again['p99_us']:.0f} µs), "
            f"p50 {script_large['p50_us']:.0f} / p99 {script_large['p99_us']:.0f} µs "
            f"at {large['active_pins']:,} (p99 ratio to the small mean "
            f"{scale['script_p99_ratio']:.2f})",
        ]
    )


def p99_runs(run: dict[str, Any]) -> str:
    """Every run's p99 of a case measured in several runs (JSON files of earlier versions
    have one run per case)."""
    p99s = run.get("p99_runs_ms")
    return f" (runs: {', '.join(f'{p99:.1f}' for p99 in p99s)})" if p99s else ""


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def draw_chart(path: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    runs = results["endpoints"]
    names = [ENDPOINT_LABELS.get(n, n).replace(" (baseline)", "") for n in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)

    rps = [r["rps"] for r in runs.values()]
    bars = left.barh(names, rps, color="#4c72b0")
    for bar, run in zip(bars, runs.values(), strict=True):
        left.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {run['rps']:,.0f} ({run['ratio_to_baseline']:.0%})",
            va="center",
            fontsize=8,
        )
    left.invert_yaxis()
    left.set_xlabel("requests per second (share of /healthz)")
    left.set_xlim(0, max(rps) * 1.35)
    # Few ticks, with thousands separators: five-digit rates run into each other otherwise.
    left.xaxis.set_major_locator(MaxNLocator(5))
    left.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    left.set_title("Throughput")

    width = 0.27
    ys = range(len(names))
    for offset, key, label in (
        (-width, "p50_ms", "p50"),
        (0, "p99_ms", "p99"),
        (width, "p999_ms", "p99.9"),
    ):
        right.barh(
            [y + offset for y in ys], [max(r[key], 0.01) for r in runs.values()], width, label=label
        )
    right.set_yticks(list(ys), names)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("latency, ms (log scale)")
    target = "30 ms: p99 target of issuance and verification"
    right.axvline(30, color="grey", linestyle=":", linewidth=1, label=target)
    # Under the axes: inside, the legend covers the bars of the last endpoints.
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    right.set_title("Latency")

    meta = results["meta"]
    rounds = len(results.get("rounds") or [None])
    per_endpoint = (
        f"median of {rounds} rounds of {meta['duration_s']} s"
        if rounds > 1
        else f"{meta['duration_s']} s"
    )
    fig.suptitle(
        f"Support PIN service, {meta['workers']} worker(s), {meta['connections']} connections, "
        f"{meta['accounts']:,} accounts, {per_endpoint} per endpoint ({meta['started_at']})",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
