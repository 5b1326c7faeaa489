"""The state machine's consumer fetches as a batch starts, not while one is applied, so a
batch holds everything sent before it began (real Kafka)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from state_machine.fetching import fetching_paused

pytestmark = pytest.mark.integration


async def test_records_sent_while_a_batch_is_applied_all_come_in_the_next_batch(
    kafka_bootstrap: str,
) -> None:
    topic = f"fetching-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                                group_id=f"g-{topic}", auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait(topic, b"0")
        first = await consumer.getmany(timeout_ms=30_000)
        assert [r.value for rs in first.values() for r in rs] == [b"0"]
        with fetching_paused(consumer):  # a batch being applied, while more records come
            for n in range(1, 5):
                await producer.send_and_wait(topic, str(n).encode())
                await asyncio.sleep(0.15)
        second = await consumer.getmany(timeout_ms=30_000)
        assert [r.value for rs in second.values() for r in rs] == [b"1", b"2", b"3", b"4"]
    finally:
        await consumer.stop()
        await producer.stop()
