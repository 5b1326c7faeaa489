"""What a cache miss costs the state machine: each read it may issue for a return, on FerretDB.

    python -m bench.miss_reads [--returns 20000] [--events-per-return 5] [--concurrency 16]

On `bench.common.servers` (fresh local ones, durable, unless given), in a database of its
own, dropped after: a returns collection and its history with the state machine's own indexes
and documents (`state_machine.documents`); then, for a fifth of the returns, each read a miss
may issue, through the state machine's own `ReadModelRepository._load_return` and
`_load_history` (decoding included), `--concurrency` at a time as the state machine issues
them, twice: a stored return's document, a document that is not there, a history of
`--events-per-return` events, a history that is empty.
Prints reads/s and wall ms per read; on this 2-core machine, with everything on it busy,
that is the CPU the read costs all processes together. These are the figures behind
`state_machine.repository.MissMix`. No assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient, InsertOne

from bench.common import servers
from contracts.messages import EventSource, ReturnDetails, ReturnEvent
from contracts.read_model import EventRecord, Milestones, Outcome, ReturnState
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from state_machine.batch import Change
from state_machine.documents import event_document, return_document
from state_machine.mongo import INSERT_CHUNK, bulk_write_chunked, gather_bounded
from state_machine.repository import ReadModelRepository

T0 = 1_700_000_000
NOW = datetime.now(UTC)


def _event(i: int, step: int) -> ReturnEvent:
    return ReturnEvent(shop_id="shop", return_id=f"r{i}", order_id=f"o{i}",
                       status=S.AFTERSALE_APPLYING, update_time=T0 + step,
                       reverse_type=T.RETURN_AND_REFUND, source=EventSource.SYNC_202309,
                       details=ReturnDetails(request_time=T0))


def _history(i: int, events: int) -> list[dict[str, Any]]:
    return [event_document(EventRecord(
        return_key=f"shop:r{i}", shop_id="shop", update_time=T0 + step, rank=1,
        event=_event(i, step), deliveries=1, last_observed_at=NOW, partition=1,
        offset=i * events + step, outcome=Outcome.APPLIED)) for step in range(events)]


def _return(i: int, events: int) -> dict[str, Any]:
    state = ReturnState(shop_id="shop", return_id=f"r{i}", order_id=f"o{i}",
                        status=S.AFTERSALE_APPLYING, reverse_type=T.RETURN_AND_REFUND,
                        update_time=T0 + events - 1, details=ReturnDetails(request_time=T0),
                        first_seen_at=NOW, last_seen_at=NOW,
                        milestones=Milestones.opened(S.AFTERSALE_APPLYING, T0))
    change = Change(f"shop:r{i}", "shop", state, (T0 + events - 1, 1), 1, i * events,
                    events - 1, ())
    return return_document(change, "bench")


async def _timed(what: str, keys: list[str], read: Callable[[str], Awaitable[Any]],
                 concurrency: int) -> None:
    started = time.perf_counter()
    await gather_bounded(keys, read, concurrency)
    seconds = time.perf_counter() - started
    print(f"  {what:<38} {len(keys) / seconds:>7,.0f}/s  {1000 * seconds / len(keys):.2f} ms",
          flush=True)


async def _run(url: str, args: argparse.Namespace) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    database = f"miss_reads_{uuid.uuid4().hex[:8]}"
    try:
        repository = ReadModelRepository(client, database, "returns", cache_size=1)
        await repository.ensure_indexes()
        n, per = args.returns, args.events_per_return
        await bulk_write_chunked(repository.returns,
                                 [InsertOne(_return(i, per)) for i in range(n)], INSERT_CHUNK, 3)
        await bulk_write_chunked(repository.events, [InsertOne(doc) for i in range(n)
                                                     for doc in _history(i, per)],
                                 INSERT_CHUNK, 3)
        stored = [f"shop:r{i}" for i in range(0, n, 5)]
        absent = [f"shop:x{i}" for i in range(0, n, 5)]
        for attempt in (1, 2):
            print(f"attempt {attempt}: {len(stored):,} reads each, {args.concurrency} at a time")
            for what, keys, read in (
                ("return by _id, stored", stored, repository._load_return),
                ("return by _id, not there", absent, repository._load_return),
                (f"history by return_key, {per} events", stored, repository._load_history),
                ("history by return_key, empty", absent, repository._load_history),
            ):
                await _timed(what, keys, read, args.concurrency)
    finally:
        await client.drop_database(database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--returns", type=int, default=20_000)
    parser.add_argument("--events-per-return", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with servers() as srv:
        asyncio.run(_run(srv.mongodb_url, args))


if __name__ == "__main__":
    main()
