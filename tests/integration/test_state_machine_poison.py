"""One bad event never holds up another, a return's history has no size limit, the counts
survive a crash between two writes, and a read model of another layout is refused at start.

Real Kafka and FerretDB; the state machine and the query API as real processes (the counts
test drives the state machine's own adapter in process, to crash it between two writes).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from typing import Any

import bson
import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from contracts.messages import RejectionReason, ReturnEvent
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    DAY_S,
    DEFAULT_RETURNS_COLLECTION,
    META_COLLECTION,
    CountsDocument,
    bucket_start,
    counts_collection,
    events_collection,
)
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType
from contracts.topics import EVENTS_TOPIC
from devinfra.proc import free_port
from state_machine.batch import Delivery, decode_all, plan
from state_machine.mongo import write_chunk_size
from state_machine.processor import no_rejections
from state_machine.repository import ReadModelRepository
from tests.integration.events import EventClock, end_offsets, event, produce
from tests.integration.harness import Doc, Harness, eventually, wait_caught_up
from tests.integration.services import ServiceProcess, http_ok

pytestmark = pytest.mark.integration

TOKEN = "poison-token"
T0 = 1_732_600_000
RR = ReverseType.RETURN_AND_REFUND


def query_api(harness: Harness, database: str) -> str:
    port = free_port()
    harness.start(ServiceProcess(
        "query_api",
        harness.env(database, QUERY_API_PORT=str(port),
                    QUERY_API_TOKENS=json.dumps({TOKEN: ["*"]})),
        harness.log_dir / "query_api.log"))
    return f"http://127.0.0.1:{port}"


def api_get(url: str, path: str, **params: Any) -> Any:
    response = httpx.get(f"{url}{path}", params=params, timeout=30,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    return response.json() if response.status_code == 200 else None


async def test_each_kind_of_poison_is_rejected_and_the_events_after_it_become_visible(
    harness: Harness,
) -> None:
    shop = f"poison-{harness.tag}"
    key = f"{shop}:r1".encode()
    clock = EventClock()
    first = event(shop, "r1", S.AFTERSALE_APPLYING, T0, clock.tick(), reverse_type=RR)
    valid = first.model_dump(mode="json")
    poison: dict[str, bytes] = {
        # past 64 bits: MongoDB cannot hold it (it wedged the consumer before)
        "huge int": json.dumps(valid | {"update_time": 10**19, "status": "COMPLETE"}).encode(),
        # a NUL: PostgreSQL, under FerretDB, cannot hold it in a string
        "NUL in text": json.dumps(valid | {"update_time": T0 + 5, "details": {
            "reason_text": "broken\u0000text"}}).encode(),
        "not JSON": b"\xff{ not json",
        "not an event": json.dumps({"shop_id": shop, "return_id": "r1"}).encode(),
    }
    after = [
        event(shop, "r1", S.AFTERSALE_RETURNING, T0 + 10, clock.tick()),
        event(shop, "r2", S.AFTERSALE_APPLYING, T0 + 20, clock.tick(), reverse_type=RR),
    ]
    records: list[ReturnEvent | tuple[bytes, bytes]] = [
        first, *((key, raw) for raw in poison.values()),
        # r2 on r1's partition too, so its arrival proves the partition moved on
        *((key, e.model_dump_json().encode()) for e in after)]
    positions = await produce(harness.kafka_bootstrap, records)
    poison_ids = {f"{EVENTS_TOPIC}:{p}:{o}": kind
                  for kind, (p, o) in zip(poison, positions[1:1 + len(poison)], strict=True)}

    database, group = harness.names("poison-kinds")
    sm = harness.state_machine("poison-kinds", database, group)
    url = query_api(harness, database)
    await eventually(lambda: asyncio.to_thread(http_ok, f"{url}/readyz"), 60, "query API")

    def visible() -> bool:
        r1 = api_get(url, f"/api/v1/returns/{shop}/r1")
        r2 = api_get(url, f"/api/v1/returns/{shop}/r2")
        return bool(r1 and r2 and r1["status"] == "AFTERSALE_RETURNING")

    async def listed() -> dict[str, Doc]:
        page = await asyncio.to_thread(api_get, url, "/api/v1/rejections", limit=200)
        return {item["rejection_id"]: item for item in (page or {"items": []})["items"]
                if item["rejection_id"] in poison_ids}

    await eventually(lambda: asyncio.to_thread(visible), 60, "the events after the poison")
    await eventually(lambda: _has_all(listed, poison_ids), 60, "the poison in /rejections")
    for rejection_id, item in (await listed()).items():
        kind = poison_ids[rejection_id]
        assert item["reason"] in {RejectionReason.UNDECODABLE, RejectionReason.INVALID_EVENT,
                                  RejectionReason.UNPROCESSABLE}, (kind, item)
        assert item["source_offset"] is not None, (kind, item)
        assert item["detail"], (kind, item)
    assert sm.running(), sm.log_tail()
    port = sm.env["STATE_MACHINE_METRICS_PORT"]

    async def progress_exported() -> bool:  # after the commit, which follows the write
        text = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")).text
        return "state_machine_seconds_since_progress{partition=" in text

    await eventually(progress_exported, 30, "progress per partition in the metrics")


async def _has_all(listed: Any, wanted: dict[str, str]) -> bool:
    return set(await listed()) == set(wanted)


@pytest.mark.slow
async def test_a_return_with_ten_thousand_events_keeps_a_small_document_and_its_whole_timeline(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    shop = f"long-{harness.tag}"
    clock = EventClock()
    statuses = (S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION)  # the buyer appeals...
    events = [event(shop, "r1", statuses[i % 2], T0 + i, clock.tick(), reverse_type=RR)
              for i in range(10_000)]
    late = events.pop(5_000)  # ... and one change arrives last: the return is folded again
    await produce(harness.kafka_bootstrap, [*events, late])

    database, group = harness.names("long")
    sm = harness.state_machine("long", database, group)
    url = query_api(harness, database)
    started = time.monotonic()
    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm],
                         within=600)
    print(f"10,000 events of one return applied in {time.monotonic() - started:.1f} s")

    doc = await mongo[database][DEFAULT_RETURNS_COLLECTION].find_one({"_id": f"{shop}:r1"})
    assert doc is not None
    assert doc["status"] == S.AFTERSALE_REJECT_APPLICATION.value
    assert len(bson.encode(doc)) < 16 * 1024, "the return's document grows with its history"
    detail = await asyncio.to_thread(api_get, url, f"/api/v1/returns/{shop}/r1")
    assert detail is not None
    assert len(detail["history"]) == 10_000
    assert [h["update_time"] for h in detail["history"]] == list(range(T0, T0 + 10_000))
    assert {h["outcome"] for h in detail["history"]} == {"applied"}


class Crash(Exception):
    """The state machine died between two writes."""


class CrashAfterCounts(ReadModelRepository):
    async def _save_counts(self, counts: Any) -> bool:
        await super()._save_counts(counts)
        raise Crash


class CrashBeforeReturns(ReadModelRepository):
    async def _save_returns(self, ops: Any, changes: Any, batch_id: str) -> set[str]:
        raise Crash


async def _apply(repository: ReadModelRepository, deliveries: list[Delivery]) -> None:
    decoded = decode_all(deliveries)
    while not await repository.save(plan(decoded, await repository.load(decoded)),
                                    no_rejections):
        pass


def _opened_then_moved(opened: int, moved: int, *, late_cancel: bool = False
                       ) -> list[Delivery]:
    """Records of one partition: `opened` returns requested, then the first `moved` of them
    approved the next day, then (if `late_cancel`) a late cancellation of the first, on the
    first day, which refolds it."""
    clock = EventClock()
    events = [event("s", f"r{i}", S.AFTERSALE_APPLYING, T0, clock.tick(), reverse_type=RR)
              for i in range(opened)]
    events += [event("s", f"r{i}", S.AFTERSALE_RETURNING, T0 + DAY_S, clock.tick())
               for i in range(moved)]
    if late_cancel:
        events.append(event("s", "r0", S.CANCEL_SUCCESS, T0 + 30, clock.tick()))
    return [Delivery(EVENTS_TOPIC, 3, offset, e.model_dump_json().encode())
            for offset, e in enumerate(events)]


@pytest.mark.parametrize("crashing", [CrashAfterCounts, CrashBeforeReturns])
async def test_status_counts_equal_a_full_recount_after_a_crash_between_two_writes(
    mongo: AsyncMongoClient[Doc], crashing: type[ReadModelRepository]
) -> None:
    database = f"counts_{uuid.uuid4().hex[:8]}"
    chunk = await write_chunk_size(mongo[database])
    records = _opened_then_moved(30, 20, late_cancel=True)
    try:
        with pytest.raises(Crash):
            await _apply(crashing(mongo, database, DEFAULT_RETURNS_COLLECTION, chunk),
                         records[:40])
        # Restarted (empty caches), it consumes from the last commit, in a batch of other size.
        restarted = ReadModelRepository(mongo, database, DEFAULT_RETURNS_COLLECTION, chunk)
        await _apply(restarted, records)
        await _apply(restarted, records)  # and once more, redelivered: nothing changes

        recount: Counter[str] = Counter()
        recount_days: Counter[tuple[str, str]] = Counter()
        async for doc in mongo[database][DEFAULT_RETURNS_COLLECTION].find({"shop_id": "s"}):
            recount[doc["status"]] += 1
            recount_days[(str(bucket_start(doc["update_time"], DAY_S)), doc["status"])] += 1
        kept: Counter[str] = Counter()
        kept_days: Counter[tuple[str, str]] = Counter()
        async for doc in mongo[database][counts_collection(DEFAULT_RETURNS_COLLECTION)].find(
                {"shop_id": "s"}):
            assert isinstance(doc["days"], str), "the days are stored as one text"
            stored = CountsDocument.model_validate(doc)
            kept.update(stored.counts)
            kept_days.update({(day, status): n for day, by_status in stored.days.items()
                              for status, n in by_status.items()})
        assert +kept == recount == Counter({"AFTERSALE_RETURNING": 19, "CANCEL_SUCCESS": 1,
                                            "AFTERSALE_APPLYING": 10})
        assert +kept_days == recount_days
    finally:
        await mongo.drop_database(database)


def _cache_reads() -> dict[str, float]:
    return {result: REGISTRY.get_sample_value("state_machine_cache_total", {"result": result})
            or 0.0 for result in ("hit", "miss")}


async def test_the_cache_keeps_as_many_returns_as_configured_and_counts_its_hits_and_misses(
    mongo: AsyncMongoClient[Doc],
) -> None:
    database = f"cache_{uuid.uuid4().hex[:8]}"
    chunk = await write_chunk_size(mongo[database])
    records = _opened_then_moved(3, 3)
    repository = ReadModelRepository(mongo, database, DEFAULT_RETURNS_COLLECTION, chunk,
                                     cache_size=2)
    try:
        before = _cache_reads()
        await _apply(repository, records[:3])
        after_open = _cache_reads()
        await _apply(repository, records[3:])  # two of the three are still in the cache
        after_move = _cache_reads()
        assert (after_open["hit"] - before["hit"], after_open["miss"] - before["miss"]) == (0, 3)
        assert (after_move["hit"] - after_open["hit"],
                after_move["miss"] - after_open["miss"]) == (2, 1)
        statuses = {doc["_id"]: doc["status"] async for doc in
                    mongo[database][DEFAULT_RETURNS_COLLECTION].find({"shop_id": "s"})}
        assert statuses == {f"s:r{i}": "AFTERSALE_RETURNING" for i in range(3)}
    finally:
        await mongo.drop_database(database)


async def _after_restart(mongo: AsyncMongoClient[Doc], return_first: bool
                         ) -> tuple[dict[str, Doc], list[Doc]]:
    """Three returns opened and moved on by one state machine; a restarted one (empty cache)
    reading its misses `return_first` or not applies a late cancellation of the first and
    moves the other two on: the stored returns (what any reader sees) and their history."""
    database = f"misses_{uuid.uuid4().hex[:8]}"
    chunk = await write_chunk_size(mongo[database])
    records = _opened_then_moved(3, 3, late_cancel=True)
    clock = EventClock()
    later = [event("s", f"r{i}", S.AFTERSALE_BUYER_SHIPPED, T0 + 120, clock.tick())
             for i in (1, 2)]
    records += [Delivery(EVENTS_TOPIC, 3, len(records) + n, e.model_dump_json().encode())
                for n, e in enumerate(later)]
    try:
        await _apply(ReadModelRepository(mongo, database, DEFAULT_RETURNS_COLLECTION, chunk),
                     records[:6])
        restarted = ReadModelRepository(mongo, database, DEFAULT_RETURNS_COLLECTION, chunk)
        restarted.misses.share = 1.0 if return_first else 0.0
        assert restarted.misses.return_first() is return_first
        await _apply(restarted, records[6:])
        db = mongo[database]
        volatile = {"written_by", "first_seen_at", "last_seen_at"}
        returns = {doc["_id"]: {k: v for k, v in doc.items() if k not in volatile}
                   async for doc in db[DEFAULT_RETURNS_COLLECTION].find({})}
        history = [{k: v for k, v in doc.items() if k not in {"last_observed_at", "event"}}
                   async for doc in db[events_collection(DEFAULT_RETURNS_COLLECTION)]
                   .find({}).sort("_id", 1)]
        return returns, history
    finally:
        await mongo.drop_database(database)


async def test_a_restarted_state_machine_ends_the_same_whichever_it_reads_first_for_a_miss(
    mongo: AsyncMongoClient[Doc],
) -> None:
    by_document = await _after_restart(mongo, return_first=True)
    by_history = await _after_restart(mongo, return_first=False)
    assert by_document == by_history
    assert {key: doc["status"] for key, doc in by_document[0].items()} == {
        "s:r0": "CANCEL_SUCCESS", "s:r1": "AFTERSALE_BUYER_SHIPPED",
        "s:r2": "AFTERSALE_BUYER_SHIPPED"}


async def test_a_read_model_of_another_layout_is_refused_at_start_with_one_line(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    database, group = harness.names("schema")
    await mongo[database][META_COLLECTION].insert_one(
        {"_id": ACTIVE_READ_MODEL_ID, "collection": DEFAULT_RETURNS_COLLECTION,
         "schema_version": 1})
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "state_machine",
            env={**os.environ, **harness.env(database, group),
                 "STATE_MACHINE_METRICS_PORT": str(free_port())},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode not in (0, None)
        last = err.decode().strip().splitlines()[-1]
        assert last.startswith("state_machine: "), err.decode()
        assert "make replay" in last, err.decode()
        assert "Traceback" not in err.decode()
    finally:
        await mongo.drop_database(database)
