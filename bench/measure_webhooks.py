"""Webhooks: how soon a webhook's change is visible in the query API under a sustained paced
load, and how many webhooks/s an endpoint accepts from a closed loop of concurrent senders.

Visibility. Webhooks are sent open-loop on a fixed schedule (`rate` per second for `seconds`),
each one's latency counted from its scheduled time, so a slow endpoint cannot slow the load
down. Reading every one of them back would itself be a good part of the load on this machine,
so a sample is tracked: every `track_every`-th webhook is polled on the detail route until it
shows the new status, each poll waiting 10% of the webhook's age (50 ms at least, 1 s at most).
A figure is thus at most ~10% (or 50 ms) late; the median gap between the last poll that missed
and the one that saw it is reported too, and how late the polls ran after their due time (p99):
pollers that fall behind would add their backlog to every figure.

Webhooks are sent, and polled, with aiohttp: httpx took about a core of this 2-core machine for
200 webhooks/s (2-3 ms of CPU a request), so the sender, not the system, fell behind its
schedule; polling with it cost the same again, and four pollers fell ~0.5 s behind their due
times at 20,000 returns.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp

from bench.common import percentiles
from bench.measure_reads import Latency
from bench.services import APP_KEY, APP_SECRET
from bench.workload import Change, changes, signature, webhook_body

WEBHOOK_PATH = "/webhooks/tiktok"
POLLERS = 16  # concurrent polls: enough that none waits for another
MIN_POLL_S, MAX_POLL_S, POLL_SHARE = 0.05, 1.0, 0.1


def signed(body: bytes) -> dict[str, str]:
    return {"Authorization": signature(APP_KEY, APP_SECRET, body),
            "Content-Type": "application/json"}


def sender_session(base_url: str, connections: int,
                   headers: dict[str, str] | None = None) -> aiohttp.ClientSession:
    """The client webhooks are sent (or the API polled) with, to the service at `base_url`."""
    return aiohttp.ClientSession(base_url=base_url, headers=headers,
                                 connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def post_webhook(session: aiohttp.ClientSession, body: bytes) -> bool:
    """True if the endpoint answered 200."""
    try:
        async with session.post(WEBHOOK_PATH, data=body, headers=signed(body)) as response:
            await response.read()
            return response.status == HTTPStatus.OK
    except (aiohttp.ClientError, TimeoutError):
        return False


@dataclass(frozen=True)
class Visibility:
    rate: float  # webhooks/s scheduled
    seconds: float
    sent: int
    accepted: int  # answered 200
    send_lag_p99_ms: float  # how late the sender was on its schedule (its own limit)
    existing_returns: int  # webhooks moving a loaded return on (the others open new ones)
    tracked: int  # accepted and polled until visible
    visible: Latency | None
    not_visible: int  # tracked but not visible within `bound_s`
    bound_s: float
    poll_gap_p50_ms: float  # uncertainty of each figure: last missed poll to the seeing one
    poll_late_p99_ms: float  # how long after its due time a poll was sent (pollers' backlog)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(order=True)
class _Tracked:
    due: float
    seq: int
    change: Change = field(compare=False)
    scheduled: float = field(compare=False)
    last_poll: float = field(compare=False)


@dataclass
class _Polling:
    heap: list[_Tracked] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    not_visible: int = 0
    sending: bool = True


async def _poll(api: aiohttp.ClientSession, shop: str, state: _Polling, bound_s: float) -> None:
    while state.sending or state.heap:
        now = time.perf_counter()
        if not state.heap or state.heap[0].due > now:
            await asyncio.sleep(0.01)
            continue
        item = heapq.heappop(state.heap)
        state.late.append(now - item.due)
        try:
            async with api.get(f"/api/v1/returns/{shop}/{item.change.return_id}") as response:
                found = response.status == HTTPStatus.OK
                status = (await response.json()).get("status") if found else None
        except (aiohttp.ClientError, TimeoutError):
            status = None
        seen = time.perf_counter()
        if status == item.change.status:
            state.latencies.append(seen - item.scheduled)
            state.gaps.append(seen - item.last_poll)
        elif seen - item.scheduled > bound_s:
            state.not_visible += 1
        else:
            age = seen - item.scheduled
            item.due = seen + min(MAX_POLL_S, max(MIN_POLL_S, POLL_SHARE * age))
            item.last_poll = seen
            heapq.heappush(state.heap, item)


async def measure_visibility(
    ingestor: aiohttp.ClientSession, api: aiohttp.ClientSession, shop: str, returns: int, *,
    rate: float, seconds: float, track_every: int, bound_s: float,
) -> Visibility:
    """`ingestor`, `api`: `sender_session`s on the ingestor and on the query API (the latter
    with a bearer token)."""
    state = _Polling()
    accepted, lags, existing = 0, [], 0

    async def send(seq: int, change: Change, scheduled: float) -> None:
        nonlocal accepted
        body = webhook_body(shop, change, int(time.time()), seq)
        if not await post_webhook(ingestor, body):
            return
        accepted += 1
        if seq % track_every == 0:
            now = time.perf_counter()
            heapq.heappush(state.heap, _Tracked(now + MIN_POLL_S, seq, change, scheduled, now))

    pollers = [asyncio.create_task(_poll(api, shop, state, bound_s)) for _ in range(POLLERS)]
    sends: set[asyncio.Task[None]] = set()
    total = round(rate * seconds)
    start = time.perf_counter()
    for seq, change in zip(range(total), changes(returns), strict=False):
        scheduled = start + seq / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        lags.append(time.perf_counter() - scheduled)
        existing += change.existing
        task = asyncio.create_task(send(seq, change, scheduled))
        sends.add(task)
        task.add_done_callback(sends.discard)
    await asyncio.gather(*sends)
    state.sending = False
    await asyncio.gather(*pollers)
    tracked = len(state.latencies) + state.not_visible
    return Visibility(
        rate=rate, seconds=seconds, sent=total, accepted=accepted,
        send_lag_p99_ms=percentiles(lags)[1], existing_returns=existing, tracked=tracked,
        visible=Latency.of(state.latencies) if state.latencies else None,
        not_visible=state.not_visible, bound_s=bound_s,
        poll_gap_p50_ms=percentiles(state.gaps)[0] if state.gaps else 0.0,
        poll_late_p99_ms=percentiles(state.late)[1] if state.late else 0.0,
    )


@dataclass(frozen=True)
class Throughput:
    concurrency: int
    seconds: float
    accepted: int
    failed: int
    per_second: float
    latency: Latency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Loop:
    samples: list[float] = field(default_factory=list)
    failed: int = 0
    seconds: float = 0.0


async def _closed_loop(client: aiohttp.ClientSession, shop: str, concurrency: int, seconds: float,
                       *, new_returns: Iterator[Change], seqs: Callable[[], int], into: _Loop
                       ) -> None:
    deadline = time.perf_counter() + seconds

    async def sender() -> None:
        while time.perf_counter() < deadline:
            body = webhook_body(shop, next(new_returns), int(time.time()), seqs())
            started = time.perf_counter()
            if await post_webhook(client, body):
                into.samples.append(time.perf_counter() - started)
            else:
                into.failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    into.seconds += time.perf_counter() - started


async def measure_accepts(
    endpoints: dict[str, aiohttp.ClientSession], shop: str, *, concurrency: int, seconds: float,
    rounds: int = 2,
) -> dict[str, Throughput]:
    """Webhooks/s answered 200 by each endpoint from `concurrency` senders, each posting its
    next webhook (a new return's request) as soon as the previous one is answered. Endpoints
    take turns, `rounds` times `seconds / rounds` each, so that a change in what else runs on
    the machine weighs on all of them alike."""
    seqs: Callable[[], int] = itertools.count(10_000_000).__next__
    new_returns = changes(0, new_prefix="c")  # with no loaded returns: new requests only
    loops = {name: _Loop() for name in endpoints}
    for _round in range(rounds):
        for name, client in endpoints.items():
            await _closed_loop(client, shop, concurrency, seconds / rounds,
                               new_returns=new_returns, seqs=seqs, into=loops[name])
    return {
        name: Throughput(concurrency, loop.seconds, len(loop.samples), loop.failed,
                         len(loop.samples) / loop.seconds,
                         Latency.of(loop.samples) if loop.samples else Latency(0.0, 0.0, 0))
        for name, loop in loops.items()
    }
