"""The sync-command consumer: SYNC_COMMANDS_TOPIC on the ingestor's broker, one command at a time
per partition, each acknowledged by hand once its job is recorded and handed to the runner
(`runner.py`, which runs shops' syncs side by side and takes over jobs of dead workers).

A record that is not a `SyncCommand` is published to the rejected topic (until Kafka takes it)
and acknowledged: it can never be run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts.messages import SyncCommand
from contracts.topics import SYNC_COMMANDS_TOPIC
from ingestor.kafka import KafkaBus, PublishError, raw_value
from ingestor.rejections import undecodable_command
from runtime.retry import until_done

log = structlog.get_logger("ingestor.sync")

MAX_POLL_INTERVAL_MS = 60 * 60 * 1000  # a long sync holds its command this long at most

OnRecord = Callable[[bytes | None, int | None, int | None], Awaitable[None]]


def subscribe(broker: KafkaBroker, group_id: str, on_record: OnRecord) -> None:
    """Subscribe `on_record(value, partition, offset)` to SYNC_COMMANDS_TOPIC (started with the
    app); the record is acknowledged once it returns."""

    @broker.subscriber(
        SYNC_COMMANDS_TOPIC,
        group_id=group_id,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_value,
        auto_offset_reset="earliest",
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        # Not "sync commands": that titles the reconciler's publisher, and AsyncAPI channels
        # are keyed by title.
        title="sync commands (handled)",
        description="Sync Return requests; key = shop_id (one consumer per shop, in order)",
    )
    async def on_sync_command(body: bytes | None, msg: KafkaMessage) -> None:
        record = msg.raw_message
        await on_record(body, getattr(record, "partition", None),
                        getattr(record, "offset", None))
        await msg.ack()


async def decode_or_reject(
    bus: KafkaBus, value: bytes | None, partition: int | None, offset: int | None
) -> SyncCommand | None:
    """The command of a record; None once an undecodable one is on the rejected topic."""
    try:
        return SyncCommand.model_validate_json(value or b"")
    except ValidationError as exc:
        rejection = undecodable_command(value, str(exc.errors(include_url=False)[:3]),
                                        partition, offset, datetime.now(UTC))
    log.error("sync_command_undecodable", partition=partition, offset=offset)
    await until_done("publish an undecodable sync command's rejection",
                     lambda: bus.publish_batch([], [rejection]),
                     retry_on=PublishError, initial_s=0.5, max_s=15.0)
    return None
