"""The whole benchmark in one command, one shop of N returns at a time on fresh servers.

    python -m bench.report [--sizes 2000 20000 100000] [--webhook-seconds 60]
                           [--webhook-rate 200] [--json results.json]

For each size N, on new local Kafka + FerretDB servers (a devinfra Infra in its own temporary
dir, stopped and removed afterwards): produce 5 events for each of N returns of one shop
(bench.workload), then measure
  1. the state machine (`python -m state_machine`) from start until its committed offsets reach
     the topic's end, against the bare consume-and-upsert loop (bench.state_machine_throughput);
     at a size of seconds (at most 20,000 events) three times each, taking turns (the median run);
  2. with the state machine, the query API and the ingestor running: the list per status tab,
     first page and page 20, and the counts (bench.measure_reads);
  3. webhook -> visible in the API under a paced load (bench.measure_webhooks);
  4. with the state machine and the query API stopped: webhooks/s accepted from a closed loop
     of concurrent senders by the ingestor and by the bare endpoint (bench.bare_ingest), taking
     turns.
Each step's log line gives its CPU seconds by process (bench.cpu), its profile. Prints a table
(sizes as columns) and optionally writes the figures as JSON. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench.common import Servers, servers
from bench.cpu import CpuMeter
from bench.measure_reads import measure_reads
from bench.measure_webhooks import (
    POLLERS,
    measure_accepts,
    measure_visibility,
    sender_session,
)
from bench.services import API_TOKEN, Env, Service
from bench.state_machine_throughput import end_offsets, time_bare_loop, time_state_machine
from bench.tables import print_tables
from bench.workload import EVENTS_PER_RETURN, expected_tabs, produce_history
from runtime.topology import ensure_topics

SHOP = "7494560109799990001"
READ_TIMEOUT_S = 1800.0
SHORT_RUN_EVENTS = 20_000
R = TypeVar("R")


def _log(size: int, message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {size:,} returns: {message}", flush=True)


async def _step(size: int, what: str, action: Awaitable[R], cpu: dict[str, Any]) -> R:
    """`action`, logged with its wall time and the CPU seconds each process spent in it (kept
    in `cpu` under `what`): the profile of each figure."""
    started = time.perf_counter()
    _log(size, f"{what}...")
    async with CpuMeter() as meter:
        result = await action
    wall = time.perf_counter() - started
    cpu[what] = {"wall_s": round(wall, 1), "cpu_s": meter.seconds}
    _log(size, f"{what} done in {wall:.0f}s; CPU seconds: {meter.summary()}")
    return result


async def _throughput(srv: Servers, size: int, env: Env, group: str, *, limit_s: float,
                      runs: int, cpu: dict[str, Any]) -> dict[str, Any]:
    """The state machine against the bare loop, `runs` times taking turns, each run on a
    database of its own (the last one on `env.database` in `group`, which the later steps
    read and go on from). The figures are those of the median run by its ratio after the first
    commit (the upper one of an even count), so that a row's rates and ratio belong together;
    every run is kept too."""
    await ensure_topics(srv.kafka_bootstrap)
    produced_s = await _step(size, "producing events",
                             produce_history(srv.kafka_bootstrap, SHOP, size), cpu)
    end = await end_offsets(srv.kafka_bootstrap)
    events = sum(end.values())
    figures: list[dict[str, float]] = []
    for run in range(runs):
        last = run == runs - 1
        database = env.database if last else f"{env.database}_run{run}"
        sm = await _step(size, "state machine", time_state_machine(
            srv, database, end, group=group if last else None, limit_s=limit_s,
            extra_env=env.common(), log=env.log_dir / "state_machine.log"), cpu)
        bare_s = await _step(size, "bare loop", time_bare_loop(srv, database, end), cpu)
        bare_rate = events / bare_s
        figures.append({"state_machine_s": sm.total_s,
                        "state_machine_first_commit_s": sm.first_commit_s,
                        "bare_loop_s": bare_s, "state_machine_per_s": sm.rate,
                        "state_machine_steady_per_s": sm.steady_rate,
                        "bare_loop_per_s": bare_rate, "ratio": sm.rate / bare_rate,
                        "steady_ratio": sm.steady_rate / bare_rate})
    median = sorted(figures, key=lambda f: f["steady_ratio"])[len(figures) // 2]
    return {"events": events, "produced_s": produced_s, **median, "runs": figures}


def throughput_runs(size: int, short_runs: int) -> int:
    """How many times to time the state machine and the bare loop at `size` returns: a run
    over at most `SHORT_RUN_EVENTS` events lasts seconds, and varies from run to run by as
    much as the gap it measures (0.52-0.79 at 2,000 returns, one run each), so it is run
    `short_runs` times; a longer run once."""
    return short_runs if size * EVENTS_PER_RETURN <= SHORT_RUN_EVENTS else 1


async def _accepts(ingestor: Service, bare: Service, args: argparse.Namespace
                   ) -> dict[str, Any]:
    async with sender_session(ingestor.url, args.concurrency) as real, \
            sender_session(bare.url, args.concurrency) as reference:
        result = await measure_accepts({"ingestor": real, "bare": reference}, SHOP,
                                       concurrency=args.concurrency, seconds=args.accept_seconds)
    return {f"accepts_{name}": throughput.as_dict() for name, throughput in result.items()}


async def run_size(srv: Servers, size: int, args: argparse.Namespace, log_dir: Path,
                   result: dict[str, Any]) -> None:
    """Fills `result` as the figures come, so a failure keeps those measured before it."""
    database, group = f"bench_{size}", f"bench-sm-{uuid.uuid4().hex[:6]}"
    result["load_average"] = [os.getloadavg()[0]]  # other work on the machine skews every figure
    env = Env(srv.kafka_bootstrap, srv.mongodb_url, database, log_dir)
    cpu = result.setdefault("cpu", {})
    result["throughput"] = await _throughput(
        srv, size, env, group, limit_s=args.catch_up_hours * 3600,
        runs=throughput_runs(size, args.short_runs), cpu=cpu)
    state_machine, query_api, ingestor = env.state_machine(group), env.query_api(), env.ingestor()
    bare = env.bare_endpoint()
    try:
        await _step(size, "starting services", asyncio.gather(
            state_machine.start(), query_api.start(), ingestor.start()), cpu)
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        async with httpx.AsyncClient(  # FerretDB takes minutes for some reads at 100,000
            base_url=query_api.url, timeout=READ_TIMEOUT_S, headers=auth,
        ) as reader, sender_session(query_api.url, connections=POLLERS, headers=auth) as api, \
                sender_session(ingestor.url, connections=256) as webhooks:
            reads = await _step(size, "list and counts",
                                measure_reads(reader, SHOP, args.requests), cpu)
            result["reads"] = reads.as_dict()
            result["counts_as_expected"] = {t.tab: t.returns for t in reads.tabs} == {
                tab: expected_tabs(size).get(tab, 0) for tab in (t.tab for t in reads.tabs)}
            visibility = await _step(size, "webhook visibility", measure_visibility(
                webhooks, api, SHOP, size, rate=args.webhook_rate,
                seconds=args.webhook_seconds, track_every=args.track_every,
                bound_s=args.visible_within), cpu)
            result["visibility"] = visibility.as_dict()
        # What the bare endpoint publishes is not a return event: no state machine from here on.
        await asyncio.gather(state_machine.stop(), query_api.stop())
        await bare.start()  # beside the ingestor: each is idle while the other is measured
        result |= await _step(size, "webhooks accepted", _accepts(ingestor, bare, args), cpu)
    finally:
        await asyncio.gather(*(s.stop() for s in (state_machine, query_api, ingestor, bare)))
        result["load_average"].append(os.getloadavg()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    parser.add_argument("--webhook-seconds", type=float, default=60)
    parser.add_argument("--webhook-rate", type=float, default=200, help="webhooks/s, paced")
    parser.add_argument("--track-every", type=int, default=50,
                        help="poll every n-th paced webhook until visible")
    parser.add_argument("--visible-within", type=float, default=30,
                        help="seconds after which a tracked webhook counts as not visible")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per query")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--accept-seconds", type=float, default=20)
    parser.add_argument("--short-runs", type=int, default=3,
                        help="times the state machine and the bare loop run at a size of at "
                             f"most {SHORT_RUN_EVENTS:,} events (the median run is reported)")
    parser.add_argument("--catch-up-hours", type=float, default=24,
                        help="give up on the state machine after this long")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    counts = (args.track_every, args.requests, args.concurrency, args.short_runs)
    if min(counts) < 1 or args.webhook_rate <= 0:
        parser.error("--track-every, --requests, --concurrency, --short-runs and --webhook-rate "
                     "must be > 0")
    # aiokafka warns on each retried send while a new topic elects its leaders: harmless here
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="returns-bench-logs-"))
    print(f"service logs: {log_dir}", flush=True)
    results: list[dict[str, Any]] = []
    for size in args.sizes:
        (log_dir / str(size)).mkdir()
        result: dict[str, Any] = {"returns": size, "events_per_return": EVENTS_PER_RETURN}
        results.append(result)
        try:
            with servers() as srv:  # fresh servers per size, stopped and removed after
                _log(size, f"servers up: kafka {srv.kafka_bootstrap}, mongodb {srv.mongodb_url}"
                           f"{'' if srv.local else ' (given, not fresh)'}")
                asyncio.run(run_size(srv, size, args, log_dir / str(size), result))
        except Exception as exc:  # keep what was measured; go on with the next size
            result["error"] = repr(exc)
            _log(size, f"FAILED: {exc!r} (service logs in {log_dir / str(size)})")
        if args.json:  # after each size, so a long run keeps what it measured
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "results": results}, indent=2))
    print_tables(results)


if __name__ == "__main__":
    main()
