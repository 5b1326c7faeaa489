"""The report's tables: one column per size, Markdown so they paste into the README."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.measure_reads import TABS

Cell = Callable[[dict[str, Any]], str]


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _ms(latency: dict[str, Any] | None) -> str:
    if not latency:
        return "—"
    return f"{latency['p50_ms']:,.0f} / {latency['p99_ms']:,.0f}"


def _table(title: str, results: list[dict[str, Any]], rows: list[tuple[str, Cell]]) -> str:
    header = [title, *(f"{r['returns']:,} returns" for r in results)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, cell in rows:
        lines.append("| " + " | ".join([name, *(_get(cell, r) for r in results)]) + " |")
    return "\n".join(lines)


def _get(cell: Cell, result: dict[str, Any]) -> str:
    try:
        return cell(result)
    except (KeyError, TypeError, ZeroDivisionError, StopIteration):
        return "—"


def _tab(tab: str, page: str) -> Cell:
    def cell(r: dict[str, Any]) -> str:
        found = next(t for t in r["reads"]["tabs"] if t["tab"] == tab)
        return f"{_ms(found[page])} ({found['returns']:,})" if page == "first_page" else _ms(
            found[page])
    return cell


def _not_visible(r: dict[str, Any]) -> str:
    v = r["visibility"]
    return f"{v['not_visible']:,} of {v['tracked']:,} (> {v['bound_s']:.0f} s)"


def _accepted(r: dict[str, Any]) -> str:
    v = r["visibility"]
    return f"{v['accepted']:,} of {v['sent']:,} ({v['existing_returns']:,} on loaded returns)"


def _runs(r: dict[str, Any]) -> str:
    runs = r["throughput"].get("runs", [])
    return f"{len(runs)}: " + ", ".join(f"{run['steady_ratio']:.2f}" for run in runs)


def _accept_ratio(r: dict[str, Any]) -> str:
    return f"{r['accepts_ingestor']['per_second'] / r['accepts_bare']['per_second']:.2f}"


PROFILED_STEPS = ("state machine", "bare loop", "list and counts", "webhook visibility",
                  "webhooks accepted")
SHOWN_KINDS = 5


def _cpu(step: str) -> Cell:
    def cell(r: dict[str, Any]) -> str:
        profile = r["cpu"][step]
        kinds = list(profile["cpu_s"].items())[:SHOWN_KINDS]
        return ", ".join(f"{kind} {s:,.0f}" for kind, s in kinds) + f" ({profile['wall_s']:,.0f})"
    return cell


def print_tables(results: list[dict[str, Any]]) -> None:
    if not results:
        return
    tables = [
        _table("state machine, 5 events per return", results, [
            ("state machine (real process)", lambda r: _rate(r["throughput"][
                "state_machine_per_s"])),
            ("  after its first commit (start left out)", lambda r: _rate(r["throughput"][
                "state_machine_steady_per_s"])),
            ("bare consume + upsert loop", lambda r: _rate(r["throughput"]["bare_loop_per_s"])),
            ("ratio", lambda r: f"{r['throughput']['ratio']:.2f}"),
            ("ratio after the first commit", lambda r: f"{r['throughput']['steady_ratio']:.2f}"),
            ("runs (the median one above): each one's ratio after the first commit", _runs),
            ("events", lambda r: f"{r['throughput']['events']:,}"),
            ("machine load, 1 min avg (start / end)",
             lambda r: " / ".join(f"{x:.1f}" for x in r["load_average"])),
        ]),
        _table("list, limit 50: p50 / p99 ms (returns in tab)", results, [
            row for tab in TABS for row in (
                (f"{tab}, first page", _tab(tab, "first_page")),
                (f"{tab}, page 20", _tab(tab, "deep_page")),
            )
        ] + [("counts: p50 / p99 ms", lambda r: _ms(r["reads"]["counts"])),
             ("counts as expected", lambda r: "yes" if r["counts_as_expected"] else "NO")]),
        _table("webhook -> visible in the API", results, [
            ("paced load", lambda r: f"{r['visibility']['rate']:,.0f}/s for "
                                     f"{r['visibility']['seconds']:,.0f} s"),
            ("accepted (200)", _accepted),
            ("visible: p50 / p99 ms", lambda r: _ms(r["visibility"]["visible"])),
            ("not visible", _not_visible),
            ("poll gap p50 (resolution)", lambda r: f"{r['visibility']['poll_gap_p50_ms']:,.0f}"
                                                    " ms"),
            ("poll late p99 (pollers' backlog)",
             lambda r: f"{r['visibility'].get('poll_late_p99_ms', 0):,.0f} ms"),
            ("sender lag p99", lambda r: f"{r['visibility']['send_lag_p99_ms']:,.0f} ms"),
        ]),
        _table("webhooks accepted, closed loop", results, [
            ("concurrency", lambda r: str(r["accepts_ingestor"]["concurrency"])),
            ("ingestor", lambda r: _rate(r["accepts_ingestor"]["per_second"])),
            ("bare FastAPI + Kafka endpoint", lambda r: _rate(r["accepts_bare"]["per_second"])),
            ("ratio", _accept_ratio),
            ("ingestor p50 / p99 ms", lambda r: _ms(r["accepts_ingestor"]["latency"])),
            ("bare p50 / p99 ms", lambda r: _ms(r["accepts_bare"]["latency"])),
            ("failed (ingestor / bare)", lambda r: f"{r['accepts_ingestor']['failed']} / "
                                                   f"{r['accepts_bare']['failed']}"),
        ]),
    ]
    tables.append(_table("CPU seconds by process (wall seconds)", results, [
        (step, _cpu(step)) for step in PROFILED_STEPS
    ]))
    failures = [f"{r['returns']:,} returns: FAILED {r['error']} (its other figures: —)"
                for r in results if "error" in r]
    print("\n\n".join(["", *tables, *failures]), flush=True)
