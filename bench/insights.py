"""Latency of `GET /api/v1/insights` over one shop of N returns on FerretDB.

    python -m bench.insights [--returns 20000] [--requests 10]

On fresh local servers (or KAFKA_BOOTSTRAP_SERVERS + MONGODB_URL when both are set): produce
bench.workload's five events for each return (requested one after another over 30 days, with
amounts, reasons and SKUs), let `python -m state_machine` fold them (so the documents are the
state machine's own), start the query API, then time the insights, one request at a time: the
window that holds every return (UTC), and a 7-day window (Asia/Kuala_Lumpur), each computed
afresh and as kept by the API. Prints a Markdown table of the median and 99th
percentile; figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.common import Servers, percentiles, servers
from bench.services import API_TOKEN, Env
from bench.state_machine_throughput import end_offsets, time_state_machine
from bench.workload import produce_history
from runtime.topology import ensure_topics

SHOP = "7494560109799990018"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _windows(now: datetime) -> list[tuple[str, dict[str, str]]]:
    """bench.workload requests its returns between 40 and 10 days before `now`."""
    def iso(days_ago: float) -> str:
        return (now - timedelta(days=days_ago)).isoformat()

    return [
        ("every return, 41 days, UTC", {"from": iso(41), "to": iso(0), "tz": "UTC"}),
        ("7 days, Asia/Kuala_Lumpur", {"from": iso(25), "to": iso(18),
                                       "tz": "Asia/Kuala_Lumpur"}),
    ]


async def _time(client: httpx.AsyncClient, params: dict[str, str], requests: int
                ) -> tuple[list[float], list[float], int, int]:
    """Seconds per request computed afresh (each window a second longer than the last, so no
    answer the API keeps serves it) and per request served from what the API kept;
    returns counted; bytes of the answer."""
    end = datetime.fromisoformat(params["to"])
    fresh = []
    for n in range(requests):
        shifted = {**params, "to": (end + timedelta(seconds=n)).isoformat()}
        started = time.perf_counter()
        answer = (await client.get("/api/v1/insights", params=shifted)).raise_for_status()
        fresh.append(time.perf_counter() - started)
    kept = []
    for _ in range(requests):
        started = time.perf_counter()
        (await client.get("/api/v1/insights", params=shifted)).raise_for_status()
        kept.append(time.perf_counter() - started)
    return fresh, kept, int(answer.json()["returns"]), len(answer.content)


async def run(srv: Servers, returns: int, requests: int, log_dir: Path) -> None:
    env = Env(srv.kafka_bootstrap, srv.mongodb_url, f"bench_insights_{returns}", log_dir)
    await ensure_topics(srv.kafka_bootstrap)
    _log(f"producing {returns:,} returns' events")
    await produce_history(srv.kafka_bootstrap, SHOP, returns)
    end = await end_offsets(srv.kafka_bootstrap)
    _log(f"state machine folding {sum(end.values()):,} events")
    folded = await time_state_machine(srv, env.database, end, extra_env=env.common(),
                                      log=log_dir / "state_machine.log")
    _log(f"folded in {folded.total_s:.0f}s; starting the query API")
    query_api = await env.query_api().start()
    rows = []
    try:
        async with httpx.AsyncClient(base_url=query_api.url, timeout=600, headers={
                "Authorization": f"Bearer {API_TOKEN}"}) as client:
            for name, window in _windows(datetime.now(UTC)):
                fresh, kept, counted, size = await _time(client, {"shop_id": SHOP, **window},
                                                         requests)
                (p50, p99), (k50, k99) = percentiles(fresh), percentiles(kept)
                rows.append(f"| {name} | {counted:,} | {p50:,.0f} / {p99:,.0f} "
                            f"| {k50:,.0f} / {k99:,.0f} | {size:,} |")
                _log(f"{name}: {counted:,} returns, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    finally:
        await query_api.stop()
    print(f"\nGET /api/v1/insights, one shop of {returns:,} returns on "
          f"{'FerretDB 1.24 (fresh, local)' if srv.local else srv.mongodb_url}, "
          f"{requests} requests each, load average {os.getloadavg()[0]:.1f}:\n")
    print("| window | returns in it | computed, p50 / p99 ms | kept, p50 / p99 ms "
          "| answer bytes |\n|---|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--returns", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=10,
                        help="timed requests per window, fresh and kept each")
    args = parser.parse_args()
    if min(args.returns, args.requests) < 1:
        parser.error("--returns and --requests must be > 0")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    log_dir = Path(tempfile.mkdtemp(prefix=f"returns-bench-insights-{uuid.uuid4().hex[:6]}-"))
    print(f"service logs: {log_dir}", flush=True)
    with servers() as srv:
        asyncio.run(run(srv, args.returns, args.requests, log_dir))


if __name__ == "__main__":
    main()
