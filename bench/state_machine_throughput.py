"""Events per second through the real state machine, against the least any read model must do.

    python -m bench.state_machine_throughput [--events 100000] [--returns 1000 10000]

For each return count: produce N events (valid lifecycles, spread over the returns, keyed by
shop + return id) to the events topic, then time
  1. the state machine (`python -m state_machine`, a real process, fresh consumer group and
     database) from start until its committed offsets reach the topic's end, and
  2. a bare loop on the same servers that only consumes the same records and bulk-upserts one
     document per return key per batch (no rules, no history): the practical limit here,
and print both rates and their ratio. No assertions: figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient, UpdateOne

from bench.common import Servers, servers
from contracts.messages import EventSource, ReturnEvent
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from runtime.topology import ensure_topics
from state_machine.mongo import bulk_write_chunked, write_chunk_size
from state_machine.settings import Settings as StateMachineSettings

# A request the buyer appeals over and over before it is approved: every event is a valid
# transition, so each one is applied and recorded, whatever the events-per-return ratio.
APPEAL_LOOP = (S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION)
ENDING = (S.AFTERSALE_RETURNING, S.AFTERSALE_BUYER_SHIPPED, S.AFTERSALE_SUCCESS, S.COMPLETE)


def lifecycle(length: int) -> list[S]:
    body = max(length - len(ENDING), 1)
    return [APPEAL_LOOP[i % 2] for i in range(body)] + list(ENDING[: max(length - body, 0)])


def events_for(shop: str, returns: int, total: int) -> list[ReturnEvent]:
    per_return = [total // returns + (1 if i < total % returns else 0) for i in range(returns)]
    streams = [
        [
            ReturnEvent(shop_id=shop, return_id=f"r{i}", order_id=f"o{i}", status=status,
                        update_time=1_700_000_000 + step, reverse_type=T.RETURN_AND_REFUND,
                        source=EventSource.SYNC_202309)
            for step, status in enumerate(lifecycle(n))
        ]
        for i, n in enumerate(per_return)
    ]
    ordered: list[ReturnEvent] = []
    rng = random.Random(7)
    cursors = [0] * returns
    live = [i for i in range(returns) if per_return[i]]
    while live:  # interleave returns, each in its own order, as a topic would hold them
        i = rng.choice(live)
        ordered.append(streams[i][cursors[i]])
        cursors[i] += 1
        if cursors[i] == len(streams[i]):
            live.remove(i)
    return ordered


async def produce(bootstrap: str, events: list[ReturnEvent]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=20,
                                max_batch_size=256 * 1024)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(EVENTS_TOPIC, e.model_dump_json().encode(),
                                       key=e.key.encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(EVENTS_TOPIC, p)
                      for p in consumer.partitions_for_topic(EVENTS_TOPIC) or range(12)]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, group: str,
                    end: dict[TopicPartition, int]) -> int | None:
    """Records of `end`'s partitions the group has committed, or None before it can tell
    (e.g. while the group coordinator is still starting)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return None
    return sum(min(offsets[tp].offset, end[tp]) if tp in offsets and offsets[tp].offset >= 0
               else 0 for tp in end)


@dataclass(frozen=True)
class Timing:
    """A state machine's run over `events` records: seconds from its process start until its
    committed offsets reached the end, and the records and seconds after its first commit,
    whose ratio is its rate with the start (imports, connections, indexes, joining the group,
    its first batch) left out, as the bare loop's timing leaves out its own."""
    events: int
    total_s: float
    first_commit_s: float
    first_committed: int

    @property
    def rate(self) -> float:
        return self.events / self.total_s

    @property
    def steady_rate(self) -> float:
        return (self.events - self.first_committed) / max(self.total_s - self.first_commit_s,
                                                          1e-9)


async def time_state_machine(srv: Servers, database: str, end: dict[TopicPartition, int],
                             *, group: str | None = None, limit_s: float = 12 * 3600,
                             extra_env: Mapping[str, str] | None = None,
                             log: Path | None = None) -> Timing:
    """Runs `python -m state_machine` (in a fresh consumer group unless `group` is given; with
    `extra_env`; its output into `log` if given) until its committed offsets reach `end` (at
    most `limit_s`: then TimeoutError), timing it (see `Timing`); it is stopped then."""
    group = group or f"bench-sm-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, **(extra_env or {}), "KAFKA_BOOTSTRAP_SERVERS": srv.kafka_bootstrap,
           "MONGODB_URL": srv.mongodb_url, "MONGODB_DATABASE": database,
           "STATE_MACHINE_GROUP_ID": group, "STATE_MACHINE_METRICS_PORT": "0",
           "LOG_LEVEL": "WARNING"}
    total = sum(end.values())
    admin = AIOKafkaAdminClient(bootstrap_servers=srv.kafka_bootstrap)
    await admin.start()  # one client for every poll: the bench's own load stays small
    started = time.perf_counter()
    with contextlib.ExitStack() as files:
        output = files.enter_context(log.open("ab")) if log is not None else None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "state_machine", env=env, stdout=output,
            stderr=asyncio.subprocess.STDOUT if output else None)
    first: tuple[float, int] | None = None
    try:
        while True:
            done = await committed(admin, group, end)
            now = time.perf_counter() - started
            if done:
                first = first or (now, done)
                if done >= total:
                    return Timing(total, now, *first)
            if proc.returncode is not None:
                raise RuntimeError("the state machine exited")
            if now > limit_s:
                raise TimeoutError(f"the state machine did not catch up within {limit_s:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        proc.terminate()
        await proc.wait()
        await admin.close()


async def time_bare_loop(srv: Servers, database: str, end: dict[TopicPartition, int]) -> float:
    """Seconds the bare loop takes over `end`'s records, chunked as the state machine is:
    batches of its `STATE_MACHINE_MAX_BATCH` records, write commands of its size."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(srv.mongodb_url)
    collection = mongo[database]["bare"]
    chunk = await write_chunk_size(mongo[database])  # the same limit the state machine obeys
    max_batch = StateMachineSettings().state_machine_max_batch  # as its process reads it
    consumer = AIOKafkaConsumer(bootstrap_servers=srv.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    started = time.perf_counter()
    try:
        consumer.assign(list(end))
        await consumer.seek_to_beginning(*end)
        while [tp for tp in end if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=500, max_records=max_batch)
            latest: dict[bytes, Any] = {}
            for records in batches.values():
                for record in records:
                    latest[record.key] = record
            if latest:
                await bulk_write_chunked(collection, [
                    UpdateOne({"_id": key.decode()},
                              {"$set": {"offset": r.offset, "value": r.value.decode()}},
                              upsert=True)
                    for key, r in latest.items()
                ], chunk)
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await mongo.close()


async def run(total: int, returns: int, srv: Servers) -> None:
    await ensure_topics(srv.kafka_bootstrap)
    before = await end_offsets(srv.kafka_bootstrap)
    shop = f"bench-{uuid.uuid4().hex[:6]}"
    produce_s = await produce(srv.kafka_bootstrap, events_for(shop, returns, total))
    end = await end_offsets(srv.kafka_bootstrap)
    on_topic = sum(end.values())
    new = on_topic - sum(before.values())
    database = f"bench_{uuid.uuid4().hex[:8]}"
    sm = await time_state_machine(srv, database, end)
    bare_s = await time_bare_loop(srv, database, end)
    bare_rate = on_topic / bare_s
    print(f"\n{new:,} events over {returns:,} returns produced in {produce_s:.1f}s "
          f"({new / produce_s:,.0f}/s); {on_topic:,} records on the topic in all")
    print(f"  state machine : {sm.rate:10,.0f} events/s  ({sm.total_s:.1f}s, incl. process start)")
    print(f"     after its first commit: {sm.steady_rate:,.0f} events/s "
          f"(first commit at {sm.first_commit_s:.1f}s)")
    print(f"  bare loop     : {bare_rate:10,.0f} events/s  ({bare_s:.1f}s)")
    print(f"  ratio         : {sm.rate / bare_rate:10.2f}  (state machine / bare loop); "
          f"{sm.steady_rate / bare_rate:.2f} after its first commit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--returns", type=int, nargs="+", default=[1_000, 10_000])
    args = parser.parse_args()
    for returns in args.returns:
        with servers() as srv:  # fresh servers per size: each run starts from an empty store
            print(f"servers: kafka {srv.kafka_bootstrap}, mongodb {srv.mongodb_url}"
                  f"{' (local, fresh)' if srv.local else ''}")
            asyncio.run(run(args.events, returns, srv))


if __name__ == "__main__":
    main()
