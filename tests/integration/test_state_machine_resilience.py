"""The state machine as a real process under crashes, outages, poison, replay and scale-out.

Real Kafka and FerretDB; `python -m state_machine` as a subprocess. The events topic is shared
by the whole session, and a fresh consumer group reads it from offset 0, so every test uses its
own shop ids, database and group id, and looks only at its own returns.

Two oracles say what "correct" is: a second, undisturbed state machine over the same topic (other
group, other database) and the domain rules folded in process (`events.expected_states`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient

from contracts.messages import EventSource, RejectionReason, ReturnEvent
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    DEFAULT_RETURNS_COLLECTION,
    META_COLLECTION,
    REJECTIONS_COLLECTION,
    Outcome,
)
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType
from contracts.topics import EVENTS_TOPIC
from devinfra.proc import free_port
from tests.conftest import InfraHandle
from tests.integration.events import (
    EventClock,
    committed_offsets,
    end_offsets,
    event,
    lifecycle_events,
    produce,
)
from tests.integration.harness import (
    CATCH_UP_S,
    Doc,
    Harness,
    assert_matches_rules,
    assert_same_returns,
    comparable,
    count,
    eventually,
    metric,
    read_rejected_topic,
    stored,
    wait_caught_up,
)
from tests.integration.services import ServiceProcess, http_ok

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- 4. poison


async def test_poison_messages_are_rejected_with_their_reason_and_the_consumer_carries_on(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    shop = harness.shops(1)[0]
    clock = EventClock()
    r1, r2, r3 = (f"{shop}:r{i}" for i in (1, 2, 3))
    unknown = event(shop, "r1", S.AFTERSALE_SUCCESS, 1_732_600_100, clock.tick(),
                    reverse_type=ReverseType.RETURN_AND_REFUND).model_dump(mode="json")
    unknown["status"] = "REPLACEMENT_REQUEST_PENDING"
    poison: list[tuple[RejectionReason, bytes]] = [
        (RejectionReason.UNDECODABLE, b"\xff\xfe\x00 not utf-8"),
        (RejectionReason.UNDECODABLE, b'{"shop_id": "truncated'),
        (RejectionReason.INVALID_EVENT, json.dumps(
            {"shop_id": shop, "return_id": "r1", "status": "AFTERSALE_SUCCESS"}).encode()),
        (RejectionReason.INVALID_EVENT, b"[1, 2, 3]"),
        (RejectionReason.UNKNOWN_STATUS, json.dumps(unknown).encode()),
    ]
    rr = ReverseType.RETURN_AND_REFUND
    before = [
        event(shop, "r1", S.AFTERSALE_APPLYING, 1_732_600_000, clock.tick(), reverse_type=rr),
        event(shop, "r3", S.AFTERSALE_APPLYING, 1_732_600_000, clock.tick(),
              reverse_type=ReverseType.REFUND_ONLY),
    ]
    after = [
        event(shop, "r1", S.AFTERSALE_RETURNING, 1_732_600_200, clock.tick(), reverse_type=rr),
        event(shop, "r2", S.AFTERSALE_APPLYING, 1_732_600_300, clock.tick(), reverse_type=rr),
        # a domain rejection too: a refund-only request never goes back to the buyer
        event(shop, "r3", S.AFTERSALE_RETURNING, 1_732_600_400, clock.tick()),
        event(shop, "r1", S.AFTERSALE_BUYER_SHIPPED, 1_732_600_500, clock.tick(),
              source=EventSource.SYNC_202309),
    ]
    # On r1's partition, between r1's events, so the events after them prove it carried on.
    records: list[ReturnEvent | tuple[bytes, bytes]] = [
        *before, *((r1.encode(), raw) for _, raw in poison), *after]
    positions = await produce(harness.kafka_bootstrap, records)
    poison_positions = positions[len(before):len(before) + len(poison)]
    rejection_ids = {f"{EVENTS_TOPIC}:{p}:{o}": (reason, raw, p, o)
                     for (reason, raw), (p, o) in zip(poison, poison_positions, strict=True)}
    forbidden_id = f"event:{after[2].event_id}"

    database, group = harness.names("poison")
    sm = harness.state_machine("poison", database, group)
    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm])

    snapshot = await stored(mongo, database, [shop])
    docs = snapshot.returns
    assert {key: doc["status"] for key, doc in docs.items()} == {
        r1: "AFTERSALE_BUYER_SHIPPED", r2: "AFTERSALE_APPLYING", r3: "AFTERSALE_APPLYING"}
    history = sorted(snapshot.history[r1].values(), key=lambda h: h["update_time"])
    assert [(h["event"]["status"], h["outcome"]) for h in history] == [
        ("AFTERSALE_APPLYING", "applied"), ("AFTERSALE_RETURNING", "applied"),
        ("AFTERSALE_BUYER_SHIPPED", "applied")]
    assert docs[r3]["anomaly"] is True
    assert not docs[r1]["anomaly"]
    newest = max(snapshot.history[r3].values(), key=lambda h: h["update_time"])
    assert newest["outcome"] == Outcome.REJECTED.value

    on_topic = await read_rejected_topic(harness.kafka_bootstrap,
                                         {*rejection_ids, forbidden_id})
    for rejection_id, (reason, raw, partition, offset) in rejection_ids.items():
        rejection = on_topic.get(rejection_id)
        assert rejection is not None, f"{reason} record at {partition}/{offset} not rejected"
        assert (rejection.reason, rejection.stage) == (reason, "state_machine")
        assert (rejection.source_topic, rejection.source_partition, rejection.source_offset) == (
            EVENTS_TOPIC, partition, offset)
        assert rejection.detail
        try:
            assert rejection.raw == raw.decode()
        except UnicodeDecodeError:
            assert rejection.raw == "base64:" + base64.b64encode(raw).decode()
        if reason is not RejectionReason.UNDECODABLE and raw.startswith(b"{"):
            assert (rejection.shop_id, rejection.return_id) == (shop, "r1")
    forbidden = on_topic.get(forbidden_id)
    assert forbidden is not None
    assert forbidden.reason is RejectionReason.FORBIDDEN_FOR_TYPE
    assert forbidden.event is not None
    assert forbidden.event.key == r3

    # The second subscriber records the rejected topic in MongoDB, `_id` = rejection id.
    rejections = mongo[database][REJECTIONS_COLLECTION]
    wanted = [*rejection_ids, forbidden_id]

    async def all_recorded() -> bool:
        return await rejections.count_documents({"_id": {"$in": wanted}}) == len(wanted)

    await eventually(all_recorded, 60, "rejections recorded in MongoDB")
    async for doc in rejections.find({"_id": {"$in": wanted}}):
        if doc["_id"] == forbidden_id:
            assert doc["reason"] == RejectionReason.FORBIDDEN_FOR_TYPE.value
            continue
        reason, _, partition, offset = rejection_ids[doc["_id"]]
        assert (doc["reason"], doc["source_partition"], doc["source_offset"]) == (
            reason.value, partition, offset)


# --------------------------------------------------------------------------- 1. crash


@pytest.mark.slow
async def test_sigkill_mid_stream_loses_no_event_and_applies_none_twice(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    shops = harness.shops(2)
    events = lifecycle_events(shops, 150, seed=1)  # ~1500 events, ~20% duplicate deliveries
    total = len({e.key for e in events})
    await produce(harness.kafka_bootstrap, events)
    target = await end_offsets(harness.kafka_bootstrap)

    database, group = harness.names("crash")
    sm = harness.state_machine("crashing", database, group, max_batch=50)
    at_kill = []
    for fraction in (0.25, 0.6):
        async def progressed(fraction: float = fraction, sm: ServiceProcess = sm) -> bool:
            assert sm.running(), sm.log_tail()
            return await count(mongo, database, shops) >= fraction * total

        await eventually(progressed, CATCH_UP_S, f"{fraction:.0%} of the returns stored",
                         interval=0.05)
        sm.kill()
        at_kill.append(await count(mongo, database, shops))
        sm = harness.state_machine("crashing", database, group, max_batch=50)
    assert all(0 < n < total for n in at_kill), (
        f"the kills did not happen mid-way ({at_kill} of {total} returns stored)")
    await wait_caught_up(harness, group, target, [sm])
    # Records stored but not committed when killed come again; informative, timing-dependent.
    print("redelivered after the last kill:", metric(sm, "state_machine_redelivered_total"))

    ref_database, ref_group = harness.names("crashref")
    ref = harness.state_machine("reference", ref_database, ref_group)
    await wait_caught_up(harness, ref_group, target, [ref])

    crashed = await stored(mongo, database, shops)
    undisturbed = await stored(mongo, ref_database, shops)
    assert len(undisturbed) == total
    assert_same_returns(comparable(crashed), comparable(undisturbed), "crashed vs undisturbed")
    assert_matches_rules(crashed, events)


# --------------------------------------------------------------------------- 2. MongoDB outage


def split_first_deliveries(
    events: list[ReturnEvent],
) -> tuple[list[ReturnEvent], list[ReturnEvent]]:
    """Each return's first delivery, and all the others (both in order)."""
    seen: set[str] = set()
    early: list[ReturnEvent] = []
    late: list[ReturnEvent] = []
    for e in events:
        (late if e.key in seen else early).append(e)
        seen.add(e.key)
    return early, late


@pytest.mark.slow
async def test_mongodb_outage_holds_back_commits_and_loses_nothing(
    harness: Harness, mongo: AsyncMongoClient[Doc], infra: InfraHandle
) -> None:
    if not infra.local:
        pytest.skip("outage simulation needs the local devinfra servers")
    shops = harness.shops(1)
    clock = EventClock()
    events = lifecycle_events(shops, 60, seed=2, clock=clock)
    early, late = split_first_deliveries(events)

    database, group = harness.names("mongo")
    # A short server selection timeout, so a failed batch is retried (and visible) in seconds.
    sm = harness.state_machine(
        "mongo-outage", database, group, max_batch=100,
        MONGODB_URL=f"{harness.mongodb_url}?serverSelectionTimeoutMS=2000")
    await produce(harness.kafka_bootstrap, early)
    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm])
    assert await count(mongo, database, shops) == len(early)
    durable = await committed_offsets(harness.kafka_bootstrap, group)

    await asyncio.to_thread(infra.stop_mongo)
    try:
        await produce(harness.kafka_bootstrap, late)
        retries = metric(sm, "state_machine_retries_total")

        async def retrying() -> bool:
            return metric(sm, "state_machine_retries_total") >= retries + 2

        # It has the records and keeps failing to store them ...
        await eventually(retrying, 60, "the state machine to retry its batch")
        # ... and commits nothing it could not store.
        assert await committed_offsets(harness.kafka_bootstrap, group) == durable
        await asyncio.sleep(3)
        assert await committed_offsets(harness.kafka_bootstrap, group) == durable
        assert sm.running(), sm.log_tail()
    finally:
        await asyncio.to_thread(infra.start_mongo)

    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm])
    assert_matches_rules(await stored(mongo, database, shops), events)


# --------------------------------------------------------------------------- 5. replay


@dataclass
class Poller:
    """Keeps asking the query API for a shop's counts from a thread, recording every answer."""

    url: str
    shop: str
    answers: list[tuple[int, Doc | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(headers={"Authorization": "Bearer t"}, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(f"{self.url}/api/v1/returns/counts",
                                          params={"shop_id": self.shop})
                    body = response.json() if response.status_code == 200 else None
                    self.answers.append((response.status_code, body))
                except httpx.HTTPError as exc:
                    self.answers.append((0, {"error": repr(exc)}))
                time.sleep(0.05)


async def test_replay_rebuilds_an_identical_read_model_and_switches_without_downtime(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    shops = harness.shops(2)
    clock = EventClock()
    events = lifecycle_events(shops, 40, seed=5, clock=clock)
    database, group = harness.names("replay")
    sm = harness.state_machine("replay-live", database, group)
    port = free_port()
    api = harness.start(ServiceProcess(
        "query_api",
        harness.env(database, QUERY_API_PORT=str(port), QUERY_API_TOKENS='{"t": ["*"]}',
                    ACTIVE_COLLECTION_CACHE_SECONDS="0.5"),
        harness.log_dir / "query_api.log"))
    url = f"http://127.0.0.1:{port}"
    await produce(harness.kafka_bootstrap, events)
    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm])
    await eventually(lambda: asyncio.to_thread(http_ok, f"{url}/readyz"), 60, "query API ready")
    old = await stored(mongo, database, shops)
    assert_matches_rules(old, events)

    poller = Poller(url, shops[0])
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        replay = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "state_machine.replay",
            env={**harness.env(database, group)}, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(replay.communicate(), 120)
        assert replay.returncode == 0, output.decode(errors="replace")
        await asyncio.sleep(1.5)  # the API's cache of the active collection expires
    finally:
        poller.stop.set()
        await asyncio.to_thread(thread.join, 15)

    meta = await mongo[database][META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
    assert meta is not None
    assert meta["collection"] != DEFAULT_RETURNS_COLLECTION
    new_collection = meta["collection"]
    assert new_collection in output.decode()
    rebuilt = await stored(mongo, database, shops, new_collection)
    assert comparable(rebuilt) == comparable(old)
    assert {k: d["applied"] for k, d in rebuilt.returns.items()} == {
        k: d["applied"] for k, d in old.returns.items()}

    assert api.running(), api.log_tail()
    assert len(poller.answers) > 10, poller.answers
    failures = [answer for answer in poller.answers if answer[0] != 200]
    assert not failures, f"{len(failures)} of {len(poller.answers)} answers failed: {failures[:3]}"
    counts = {json.dumps(body, sort_keys=True) for _, body in poller.answers}
    assert len(counts) == 1, f"the counts changed during the rebuild: {counts}"

    # The live state machine follows the switch: what comes next goes to the new collection.
    more = [event(shops[0], "late-1", S.AFTERSALE_APPLYING, 1_732_700_000, clock.tick(),
                  reverse_type=ReverseType.REFUND_ONLY)]
    await produce(harness.kafka_bootstrap, more)
    await wait_caught_up(harness, group, await end_offsets(harness.kafka_bootstrap), [sm])
    assert_matches_rules(await stored(mongo, database, shops, new_collection), events + more)
    assert (await stored(mongo, database, shops)).returns.keys() == old.returns.keys()


# --------------------------------------------------------------------------- 6. scale-out


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The group's state and number of members ("", 0 while it has no coordinator yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    except KafkaError as exc:
        if not exc.retriable:
            raise
        return "", 0
    finally:
        await admin.close()
    (description,) = response.groups
    return str(description[2]), len(description[5])


@pytest.mark.slow
async def test_two_consumers_share_partitions_and_a_survivor_takes_over(
    harness: Harness, mongo: AsyncMongoClient[Doc]
) -> None:
    shops = harness.shops(2)
    events = lifecycle_events(shops, 100, seed=6)
    half = len(events) // 2
    database, group = harness.names("scale")
    a = harness.state_machine("scale-a", database, group, max_batch=50)
    b = harness.state_machine("scale-b", database, group, max_batch=50)

    async def both_members() -> bool:
        return await group_members(harness.kafka_bootstrap, group) == ("Stable", 2)

    await eventually(both_members, 90, "both processes in the group")
    consumed = {p.log_path.name: metric(p, "state_machine_events_consumed_total") for p in (a, b)}
    await produce(harness.kafka_bootstrap, events[:half])

    async def both_consume() -> bool:
        return all(metric(p, "state_machine_events_consumed_total") > consumed[p.log_path.name]
                   for p in (a, b))

    await eventually(both_consume, CATCH_UP_S, "both processes to consume")

    a.kill()
    await produce(harness.kafka_bootstrap, events[half:])
    target = await end_offsets(harness.kafka_bootstrap)
    await wait_caught_up(harness, group, target, [b])
    assert await group_members(harness.kafka_bootstrap, group) == ("Stable", 1)

    ref_database, ref_group = harness.names("scaleref")
    ref = harness.state_machine("scale-reference", ref_database, ref_group)
    await wait_caught_up(harness, ref_group, target, [ref])

    scaled = await stored(mongo, database, shops)
    assert_same_returns(comparable(scaled), comparable(await stored(mongo, ref_database, shops)),
                        "two consumers with a crash vs one undisturbed")
    assert_matches_rules(scaled, events)


# --------------------------------------------------------------------------- 3. Kafka outage


@pytest.mark.slow
async def test_state_machine_reconnects_after_a_kafka_outage(
    harness: Harness, mongo: AsyncMongoClient[Doc], infra: InfraHandle
) -> None:
    if not infra.local:
        pytest.skip("outage simulation needs the local devinfra servers")
    shops = harness.shops(1)
    events = lifecycle_events(shops, 60, seed=3)
    early, late = split_first_deliveries(events)

    database, group = harness.names("kafka")
    # A consumer wedged by the broker restart is replaced by the watchdog after 20 s.
    sm = harness.state_machine("kafka-outage", database, group, STATE_MACHINE_STALL_SECONDS="20")
    await produce(harness.kafka_bootstrap, early)
    target0 = await end_offsets(harness.kafka_bootstrap)
    await wait_caught_up(harness, group, target0, [sm])
    assert await count(mongo, database, shops) == len(early)

    await asyncio.to_thread(infra.stop_kafka)
    try:
        await asyncio.sleep(5)
        assert sm.running(), f"the state machine died with Kafka:\n{sm.log_tail()}"
    finally:
        await asyncio.to_thread(infra.start_kafka)

    async with asyncio.timeout(60):  # a client that hangs on the restarted broker fails here
        await produce(harness.kafka_bootstrap, late)
        target = await end_offsets(harness.kafka_bootstrap)
    await wait_caught_up(harness, group, target, [sm], within=90)
    assert_matches_rules(await stored(mongo, database, shops), events)
