"""Smoke test: the fixtures yield a working Kafka and a working FerretDB."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import MongoClient

pytestmark = pytest.mark.integration


async def test_kafka_roundtrip(kafka_bootstrap: str) -> None:
    topic = f"infra-smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await consumer.getone()
        assert (msg.key, msg.value) == (b"k1", b"hello")
        await consumer.commit()
    finally:
        await consumer.stop()


def test_mongo_roundtrip(mongodb_url: str) -> None:
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    try:
        coll = client["infra_smoke"][f"c_{uuid.uuid4().hex[:8]}"]
        coll.insert_one({"_id": "r1", "status": "REQUESTED", "amount": {"value": "12.50"}})
        doc = coll.find_one({"_id": "r1"})
        assert doc is not None and doc["status"] == "REQUESTED"
        coll.update_one({"_id": "r1"}, {"$set": {"status": "APPROVED"}})
        assert coll.count_documents({"status": "APPROVED"}) == 1
    finally:
        client.close()
