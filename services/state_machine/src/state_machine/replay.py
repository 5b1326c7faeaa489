"""Rebuild the read model from offset 0 of the events topic, then switch to it atomically.

    python -m state_machine.replay [--collection NAME] [--no-switch]

1. Fold every event from the beginning of each partition into a new, empty read model (returns,
   their history and their counts), with the same rules and code as the live consumer, until it
   has caught up with the topic's end.
2. Point `meta.active_read_model` at it in one single-document write: the query API reads the
   old read model until then and the new one after (it keeps answering throughout); the
   history and counts collections are named after the returns collection, so all three switch
   in that one write.
3. Read once more up to the topic's end. The live state machine asks for the active collection
   at the start of every batch, so only batches it fetched before the switch can have gone to the
   old collection; their offsets are below the end read here, so this pass applies them too.
   Where both write the same return, the stored offsets and versions make it apply once.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymongo import AsyncMongoClient

from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    META_COLLECTION,
    READ_MODEL_SCHEMA_VERSION,
    RETURNS_COLLECTION_PREFIX,
)
from contracts.topics import EVENTS_TOPIC
from runtime.logs import configure_logging
from runtime.read_model import active_returns_collection
from state_machine.batch import Delivery
from state_machine.kafka_admin import topic_partitions
from state_machine.processor import BatchProcessor, no_rejections
from state_machine.repository import ActiveReadModel
from state_machine.settings import Settings

log = structlog.get_logger(__name__)


async def _read_to_end(consumer: AIOKafkaConsumer, processor: BatchProcessor,
                       partitions: list[TopicPartition], max_batch: int) -> int:
    end = await consumer.end_offsets(partitions)
    consumed = 0
    while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
        batches = await consumer.getmany(timeout_ms=1000, max_records=max_batch)
        records = [r for tp_records in batches.values() for r in tp_records]
        if records:
            await processor.process(
                [Delivery(r.topic, r.partition, r.offset, r.value) for r in records]
            )
            consumed += len(records)
    return consumed


async def replay(settings: Settings, collection: str | None = None, switch: bool = True) -> str:
    """Rebuild into `collection` (default: a new timestamped one); return its name."""
    name = collection or f"{RETURNS_COLLECTION_PREFIX}_{time.strftime('%Y%m%d%H%M%S')}"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    db = mongo.get_database(settings.mongodb_database)
    if name in await db.list_collection_names():
        raise SystemExit(f"collection {name!r} exists already; replay builds a new one")
    processor = BatchProcessor(ActiveReadModel(mongo, settings.mongodb_database, name,
                                               settings.state_machine_cache_returns),
                               no_rejections)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        ids = await topic_partitions(settings.kafka_bootstrap_servers, EVENTS_TOPIC)
        partitions = [TopicPartition(EVENTS_TOPIC, p) for p in ids]
        if not partitions:
            raise SystemExit(f"topic {EVENTS_TOPIC} not found")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        started = time.monotonic()
        max_batch = settings.state_machine_max_batch
        count = await _read_to_end(consumer, processor, partitions, max_batch)
        log.info("replayed", collection=name, events=count,
                 seconds=round(time.monotonic() - started, 1))
        if switch:
            previous = await active_returns_collection(db)
            await db[META_COLLECTION].replace_one(
                {"_id": ACTIVE_READ_MODEL_ID},
                {"_id": ACTIVE_READ_MODEL_ID, "collection": name,
                 "schema_version": READ_MODEL_SCHEMA_VERSION},
                upsert=True,
            )
            tail = await _read_to_end(consumer, processor, partitions, max_batch)
            log.info("switched", active=name, previous=previous, caught_up_after_switch=tail)
    finally:
        await consumer.stop()
        await mongo.close()
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", help="name of the new collection (default: timestamped)")
    parser.add_argument("--no-switch", action="store_true", help="build it but do not switch")
    args = parser.parse_args()
    settings = Settings()
    configure_logging(settings.log_level)
    name = asyncio.run(replay(settings, args.collection, switch=not args.no_switch))
    print(f"read model rebuilt into {name}" + ("" if args.no_switch else " and switched in"))


if __name__ == "__main__":
    main()
