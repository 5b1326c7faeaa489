"""Return events for integration tests: deterministic lifecycles, produced straight to Kafka.

Events go to the events topic exactly as the ingestor publishes them (key = "shop:return",
value = the event's JSON), so the state machine can be exercised without the ingestor.
Everything here is deterministic (seeded, fixed `observed_at`), so two state machines fed the
same topic must store identical returns, and `expected_states` folds the same events through
the domain rules in process as an independent oracle.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent
from contracts.read_model import ReturnState
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType
from contracts.topics import EVENTS_TOPIC
from runtime.topology import ensure_topics
from state_machine.domain import fold_events

T0 = 1_732_600_000
OBSERVED_BASE = datetime(2024, 11, 26, 12, 0, tzinfo=UTC)

RR = ReverseType.RETURN_AND_REFUND
RO = ReverseType.REFUND_ONLY

# Valid lifecycles per reverse type (DOMAIN.md, "Valid transitions").
LIFECYCLES: tuple[tuple[ReverseType, tuple[S, ...]], ...] = (
    (RR, (S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING, S.AFTERSALE_BUYER_SHIPPED,
          S.AFTERSALE_SUCCESS, S.COMPLETE)),
    (RR, (S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING, S.AFTERSALE_BUYER_SHIPPED,
          S.AFTERSALE_SELLER_REJECT_RECEIVE, S.CLOSED)),
    (RR, (S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION, S.AFTERSALE_APPLYING,
          S.AFTERSALE_RETURNING, S.CANCEL_SUCCESS)),
    (RO, (S.AFTERSALE_APPLYING, S.AFTERSALE_SUCCESS, S.COMPLETE)),
    (RO, (S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION, S.CLOSED)),
    (RO, (S.AFTERSALE_APPLYING, S.CANCEL_SUCCESS)),
)


class EventClock:
    """Hands out strictly increasing `observed_at` values, so runs are reproducible."""

    def __init__(self, start: datetime = OBSERVED_BASE) -> None:
        self._next = start

    def tick(self) -> datetime:
        self._next += timedelta(milliseconds=1)
        return self._next


def event(
    shop_id: str,
    return_id: str,
    status: S,
    update_time: int,
    observed_at: datetime,
    *,
    reverse_type: ReverseType | None = None,
    source: EventSource = EventSource.WEBHOOK_202309,
    details: ReturnDetails | None = None,
) -> ReturnEvent:
    return ReturnEvent(
        shop_id=shop_id,
        return_id=return_id,
        order_id=f"o-{return_id}",
        status=status,
        update_time=update_time,
        reverse_type=reverse_type,
        details=details or ReturnDetails(),
        source=source,
        notification_id=f"n-{return_id}-{status.value}-{update_time}",
        observed_at=observed_at,
    )


def lifecycle_events(
    shop_ids: Sequence[str], returns_per_shop: int, seed: int, clock: EventClock | None = None,
    duplicate_rate: float = 0.3,
) -> list[ReturnEvent]:
    """Valid lifecycles of `returns_per_shop` returns per shop, interleaved across returns (each
    return's own events keep their order). About `duplicate_rate` of the changes are delivered
    twice (the second time by "sync", sometimes with details the webhook lacked, sometimes much
    later); a few changes are missed (a gap, inferred) or arrive late (folded in their place)."""
    rng = random.Random(seed)
    clock = clock or EventClock()
    ids = [(shop, f"r{n:05d}") for shop in shop_ids for n in range(returns_per_shop)]
    Change = tuple[S, int, ReverseType, EventSource, ReturnDetails | None]
    per_return: list[list[Change]] = []
    for n in range(len(ids)):
        reverse_type, statuses = rng.choice(LIFECYCLES)
        t = T0 + rng.randrange(0, 86_400)
        deliveries: list[Change] = []
        for status in statuses:
            t += rng.randrange(1, 3_600)
            deliveries.append((status, t, reverse_type, EventSource.WEBHOOK_202309, None))
        if len(deliveries) > 3 and rng.random() < 0.1:  # a missed webhook: a gap
            del deliveries[rng.randrange(1, len(deliveries) - 1)]
        if len(deliveries) > 2 and rng.random() < 0.1:  # a late one
            deliveries.append(deliveries.pop(rng.randrange(1, len(deliveries) - 1)))
        for change in list(deliveries):
            if rng.random() < duplicate_rate:  # delivered again by sync, maybe with details
                status, t, reverse_type, _, _ = change
                details = ReturnDetails(
                    refund=Money(amount=Decimal(rng.randrange(100, 99_999)) / 100,
                                 currency="USD"),
                    tracking_number=f"TRK{n}-{t}" if reverse_type is RR else None,
                ) if rng.random() < 0.5 else None
                at = rng.randrange(deliveries.index(change) + 1, len(deliveries) + 1)
                deliveries.insert(at, (status, t, reverse_type, EventSource.SYNC_202309, details))
        per_return.append(deliveries)
    cursors = [0] * len(per_return)
    pending = [i for i, d in enumerate(per_return) if d]
    result: list[ReturnEvent] = []
    while pending:
        i = rng.choice(pending)
        status, t, reverse_type, source, details = per_return[i][cursors[i]]
        shop_id, return_id = ids[i]
        result.append(event(shop_id, return_id, status, t, clock.tick(),
                            reverse_type=reverse_type, source=source, details=details))
        cursors[i] += 1
        if cursors[i] == len(per_return[i]):
            pending.remove(i)
    return result


def expected_states(events: Iterable[ReturnEvent]) -> dict[str, ReturnState]:
    """What the read model must hold for these events, folded in process by the domain rules
    (in fold order, whatever order they are given in)."""
    per_return: dict[str, list[ReturnEvent]] = defaultdict(list)
    for e in events:
        per_return[e.key].append(e)
    states: dict[str, ReturnState] = {}
    for key, items in per_return.items():
        state = fold_events(items).state
        if state is not None:
            states[key] = state
    return states


def duplicates_in(events: Iterable[ReturnEvent]) -> int:
    """How many deliveries repeat an event already delivered (by event id)."""
    seen: set[str] = set()
    duplicates = 0
    for e in events:
        if e.event_id in seen:
            duplicates += 1
        seen.add(e.event_id)
    return duplicates


async def produce(
    bootstrap: str, records: Iterable[ReturnEvent | tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    """Send events (key = event.key) or raw (key, value) pairs to the events topic, in order,
    wait until the broker acknowledged all of them, and say where each went
    (partition, offset)."""
    await ensure_topics(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for record in records:
            if isinstance(record, ReturnEvent):
                key, value = record.key.encode(), record.model_dump_json().encode()
            else:
                key, value = record
            futures.append(await producer.send(EVENTS_TOPIC, value, key=key))
        await producer.flush()
        positions = []
        for future in futures:
            metadata = await future
            positions.append((int(metadata.partition), int(metadata.offset)))
        return positions
    finally:
        await producer.stop()


async def new_topic(bootstrap: str, prefix: str) -> str:
    """A topic of its own (one partition) for a test, named `prefix-<random>`."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """All partitions of a topic (a consumer without subscriptions has no metadata for it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [int(p["partition"]) for t in described
             if t["topic"] == topic and t["error_code"] == 0 for p in t["partitions"]]
    assert found, f"topic {topic} not found"
    return [TopicPartition(topic, p) for p in sorted(found)]


async def end_offsets(bootstrap: str, topic: str = EVENTS_TOPIC) -> dict[int, int]:
    """The next offset to be written on each partition of the topic."""
    partitions = await topic_partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group_id: str,
                            topic: str = EVENTS_TOPIC) -> dict[int, int]:
    """The group's committed offsets on the topic (without joining the group)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset >= 0}


async def caught_up(bootstrap: str, group_id: str, target: dict[int, int]) -> bool:
    """Whether the group has committed every partition at least up to `target`."""
    try:
        committed = await asyncio.wait_for(committed_offsets(bootstrap, group_id), 20)
    except TimeoutError:
        return False
    except KafkaError as exc:  # e.g. no group coordinator yet on a fresh broker
        if not exc.retriable:
            raise
        return False
    return all(committed.get(p, 0) >= offset for p, offset in target.items() if offset > 0)
