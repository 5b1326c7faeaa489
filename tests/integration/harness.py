"""Running state machines as real processes in tests, and reading back what they stored.

Shared by the state machine's integration tests: a per-test `Harness` of processes, waiting
helpers, a `Snapshot` of what the read model holds of some shops, and the two oracles (another
state machine's snapshot, and the domain rules folded in process).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from contracts.messages import RejectedEvent, ReturnEvent
from contracts.read_model import (
    DEFAULT_RETURNS_COLLECTION,
    ReturnState,
    counts_collection,
    events_collection,
)
from contracts.topics import REJECTED_TOPIC
from devinfra.proc import free_port
from state_machine.domain import fold_events
from tests.integration.events import caught_up, duplicates_in, expected_states, topic_partitions
from tests.integration.services import ServiceProcess

Doc = dict[str, Any]
# What a stored return says; all of it is derived from the events, so two runs must agree.
COMPARED = ("status", "duplicate_count", "anomaly", "details", "reverse_type",
            "update_time", "order_id", "first_seen_at", "last_seen_at")
# What a stored history document says of its event, likewise.
EVENT_COMPARED = ("outcome", "deliveries", "inferred", "reason")
CATCH_UP_S = 150.0


@dataclass
class Harness:
    """Starts state machines (and a query API) for one test, stops them all afterwards."""

    kafka_bootstrap: str
    mongodb_url: str
    log_dir: Path
    tag: str
    processes: list[ServiceProcess] = field(default_factory=list)

    def shops(self, count: int) -> list[str]:
        return [f"shop-{self.tag}-{i}" for i in range(count)]

    def names(self, what: str) -> tuple[str, str]:
        """A fresh (database, consumer group) pair."""
        suffix = f"{self.tag}_{what}_{uuid.uuid4().hex[:6]}"
        return f"res_{suffix}", f"sm-res-{suffix}"

    def env(self, database: str, group: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": database,
            "LOG_LEVEL": "INFO",
        }
        if group is not None:
            env["STATE_MACHINE_GROUP_ID"] = group
        return env | extra

    def state_machine(self, name: str, database: str, group: str, *, max_batch: int = 500,
                      **extra: str) -> ServiceProcess:
        env = self.env(database, group, STATE_MACHINE_MAX_BATCH=str(max_batch),
                       STATE_MACHINE_METRICS_PORT=str(free_port()), **extra)
        return self.start(ServiceProcess("state_machine", env, self.log_dir / f"{name}.log"))

    def start(self, process: ServiceProcess) -> ServiceProcess:
        self.processes.append(process.start())
        return process


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str,
                     interval: float = 0.25) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")


async def wait_caught_up(h: Harness, group: str, target: dict[int, int],
                         processes: Iterable[ServiceProcess], within: float = CATCH_UP_S) -> None:
    alive = list(processes)

    async def check() -> bool:
        for process in alive:
            assert process.running(), f"{process.log_path.name} died:\n{process.log_tail()}"
        return await caught_up(h.kafka_bootstrap, group, target)

    await eventually(check, within, f"group {group} to commit up to {target}")


def metric(process: ServiceProcess, name: str) -> float:
    port = process.env["STATE_MACHINE_METRICS_PORT"]
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@dataclass
class Snapshot:
    """What the read model holds of some shops: returns, their history, their counts."""

    returns: dict[str, Doc]
    history: dict[str, dict[str, Doc]]  # return key -> event id -> history document
    counts: dict[str, int]  # status -> returns, over the shops

    def __len__(self) -> int:
        return len(self.returns)


async def stored(client: AsyncMongoClient[Doc], database: str, shops: list[str],
                 collection: str = DEFAULT_RETURNS_COLLECTION) -> Snapshot:
    db = client[database]
    returns = {doc["_id"]: doc async for doc in db[collection].find({"shop_id": {"$in": shops}})}
    history: dict[str, dict[str, Doc]] = {}
    async for doc in db[events_collection(collection)].find({"shop_id": {"$in": shops}}):
        history.setdefault(doc["return_key"], {})[doc["_id"]] = doc
    counts: Counter[str] = Counter()
    async for doc in db[counts_collection(collection)].find({"shop_id": {"$in": shops}}):
        counts.update(doc["counts"])
    return Snapshot(returns, history, dict(+counts))


async def count(client: AsyncMongoClient[Doc], database: str, shops: list[str]) -> int:
    coll = client[database][DEFAULT_RETURNS_COLLECTION]
    return await coll.count_documents({"shop_id": {"$in": shops}})


def comparable(snapshot: Snapshot) -> dict[str, Doc]:
    """The compared fields of stored returns and of their history, and the counts."""
    return {
        **{key: ReturnState.model_validate(doc).model_dump(mode="json", include=set(COMPARED))
           for key, doc in snapshot.returns.items()},  # as the services read it back
        **{f"history {key}": {eid: {n: d.get(n) for n in EVENT_COMPARED}
                              for eid, d in events.items()}
           for key, events in snapshot.history.items()},
        "counts": snapshot.counts,
    }


def expected_snapshot(events: list[ReturnEvent]) -> dict[str, Doc]:
    """`comparable` of what the domain rules make of these events, folded in process."""
    per_return: dict[str, list[ReturnEvent]] = {}
    for e in events:
        per_return.setdefault(e.key, []).append(e)
    result: dict[str, Doc] = {}
    counts: Counter[str] = Counter()
    for key, items in per_return.items():
        folded = fold_events(items)
        deliveries = Counter(e.event_id for e in items)
        if folded.state is not None:
            result[key] = folded.state.model_dump(mode="json", include=set(COMPARED))
            counts[folded.state.status.value] += 1
        result[f"history {key}"] = {
            eid: {"outcome": v.outcome.value, "deliveries": deliveries[eid],
                  "inferred": [s.value for s in v.inferred],
                  "reason": v.reason.value if v.reason else None}
            for eid, v in folded.verdicts.items()
        }
    result["counts"] = dict(counts)
    return result


def assert_same_returns(actual: dict[str, Doc], expected: dict[str, Doc], what: str) -> None:
    assert actual.keys() == expected.keys(), (
        f"{what}: missing {sorted(expected.keys() - actual.keys())[:5]}, "
        f"unexpected {sorted(actual.keys() - expected.keys())[:5]}"
    )
    differing = [key for key in expected if actual[key] != expected[key]]
    assert not differing, (
        f"{what}: {len(differing)} returns differ, e.g. {differing[0]}:\n"
        f"actual   {actual[differing[0]]}\nexpected {expected[differing[0]]}"
    )


def assert_matches_rules(snapshot: Snapshot, events: list[ReturnEvent]) -> None:
    """The stored returns, their history and counts are exactly the events folded by the
    domain rules: nothing lost, no event twice, every duplicate delivery counted once."""
    assert_same_returns(comparable(snapshot), expected_snapshot(events), "vs the domain rules")
    assert sum(doc["duplicate_count"] for doc in snapshot.returns.values()) == duplicates_in(
        [e for e in events if e.key in snapshot.returns])
    expected = expected_states(events)
    assert {k: ReturnState.model_validate(d) for k, d in snapshot.returns.items()} == expected


async def read_rejected_topic(bootstrap: str, wanted: set[str],
                              within: float = 60) -> dict[str, RejectedEvent]:
    """The rejections with these ids on the rejected topic (read without a group)."""
    found: dict[str, RejectedEvent] = {}
    partitions = await topic_partitions(bootstrap, REJECTED_TOPIC)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + within
        while wanted - found.keys() and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    rejection = RejectedEvent.model_validate_json(record.value or b"")
                    if rejection.rejection_id in wanted:
                        found[rejection.rejection_id] = rejection
    finally:
        await consumer.stop()
    return found
