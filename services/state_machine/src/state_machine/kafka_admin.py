"""Small Kafka admin look-ups the state machine needs."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[int]:
    """The topic's partition ids. (Not `consumer.partitions_for_topic`: a consumer that has
    subscribed to nothing has no metadata for the topic, and `consumer.topics()` does not
    store what it fetches, so that answers None.)"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(int(p["partition"]) for t in described
                  if t["topic"] == topic and t["error_code"] == 0 for p in t["partitions"])
