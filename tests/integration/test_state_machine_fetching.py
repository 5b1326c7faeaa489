"""How the state machine's consumer fetches while a batch is applied (real Kafka): while it
keeps up, not at all, so the next batch holds everything sent before it began; while it is
behind (a full batch), ahead as usual."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from state_machine.fetching import while_applying
from tests.integration.events import new_topic

pytestmark = pytest.mark.integration
MAX_BATCH = 500


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    return await new_topic(kafka_bootstrap, "fetching")


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def consumer(kafka_bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                group_id=f"g-{topic}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    yield consumer
    await consumer.stop()


async def _values(consumer: AIOKafkaConsumer) -> list[bytes | None]:
    batch = await consumer.getmany(timeout_ms=30_000, max_records=MAX_BATCH)
    return [record.value for records in batch.values() for record in records]


async def test_records_sent_while_a_batch_is_applied_all_come_in_the_next_batch(
    topic: str, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
) -> None:
    await producer.send_and_wait(topic, b"0")
    assert await _values(consumer) == [b"0"]
    with while_applying(consumer, 1, MAX_BATCH):  # a batch being applied, while more come
        for n in range(1, 5):
            await producer.send_and_wait(topic, str(n).encode())
            await asyncio.sleep(0.15)
    assert await _values(consumer) == [b"1", b"2", b"3", b"4"]


async def test_a_consumer_behind_keeps_fetching_while_a_full_batch_is_applied(
    topic: str, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer,
) -> None:
    await producer.send_and_wait(topic, b"0")
    assert await _values(consumer) == [b"0"]
    with while_applying(consumer, MAX_BATCH, MAX_BATCH):
        assert consumer.paused() == set()
    with while_applying(consumer, MAX_BATCH - 1, MAX_BATCH):
        assert consumer.paused() == consumer.assignment()
    assert consumer.paused() == set()
