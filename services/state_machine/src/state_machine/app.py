"""Entrypoint of the state machine: wires Kafka (FastStream), MongoDB and the batch processor.

Records are decoded in the handler, not by FastStream, so one bad record is rejected on its own
instead of failing its whole batch. Offsets are committed by hand (AckPolicy.MANUAL) after the
batch is durable; infrastructure errors are retried with backoff, never skipped; what one event
causes is taken out of the batch (state_machine.processor), never retried without end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any, TypeVar

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.specification import AsyncAPI
from prometheus_client import start_http_server
from pymongo import AsyncMongoClient

from contracts.messages import RejectedEvent
from contracts.read_model import ACTIVE_READ_MODEL_ID, META_COLLECTION
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC
from runtime.logs import configure_logging
from runtime.retry import until_done
from runtime.topology import ensure_topics
from state_machine import metrics
from state_machine.batch import Delivery
from state_machine.fetching import while_applying
from state_machine.kafka_admin import topic_partitions
from state_machine.processor import BatchProcessor, is_infrastructure_error
from state_machine.repository import ActiveReadModel, ReadModelRepository, check_schema
from state_machine.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")

ASYNCAPI_DESCRIPTION = (
    "The state machine's Kafka side: it folds the return events into the read model, publishes "
    "the events it cannot apply, and records every rejection for the query API."
)


def raw_records(message: Any) -> list[bytes | None]:
    """FastStream decoder that leaves the bytes alone: the handler decodes each record."""
    return [record.value for record in message.raw_message]


async def retry_forever(what: str, action: Callable[[], Awaitable[T]]) -> T:
    """Retry what the store or the bus failed to do, never what the data caused."""
    return await until_done(what, action, retry_on=is_infrastructure_error,
                            on_retry=metrics.RETRIES.inc)


class Watchdog:
    """Notices a consumer that has stopped fetching while records wait (seen with aiokafka
    after a broker restart: the group never rejoins) and stops the app, so that `__main__`
    starts a fresh consumer. Time spent inside a batch (e.g. retrying while MongoDB is down)
    is progress, not a stall. Stored offsets make the restart harmless."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last_progress = time.monotonic()
        self.busy = False
        self.stalled = False

    async def lag(self) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                    group_id=self.settings.state_machine_group_id,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(EVENTS_TOPIC, p) for p in
                          await topic_partitions(self.settings.kafka_bootstrap_servers,
                                                 EVENTS_TOPIC)]
            end = await consumer.end_offsets(partitions) if partitions else {}
            lag = 0
            for tp, last in end.items():
                lag += last - (await consumer.committed(tp) or 0)
            return lag
        finally:
            await consumer.stop()

    async def watch(self, app: FastStream) -> None:
        limit = self.settings.state_machine_stall_seconds
        while True:
            await asyncio.sleep(limit / 4)
            if self.busy or time.monotonic() - self.last_progress < limit:
                continue
            try:
                lag = await asyncio.wait_for(self.lag(), limit)
            except Exception as exc:  # Kafka unreachable: the consumer is not to blame
                log.warning("watchdog could not read the lag", error=repr(exc))
                continue
            if lag > 0:
                log.error("consumer stalled: no batch for a while although records wait; "
                          "restarting it", lag=lag, idle_seconds=limit)
                self.stalled = True
                app.exit()
                return
            self.last_progress = time.monotonic()


class Service:
    """What the state machine does with what it consumes; `create_app` wires it to Kafka."""

    def __init__(self, settings: Settings, rejected: Any, watchdog: Watchdog) -> None:
        self.settings = settings
        self.rejected = rejected  # the rejected topic's publisher
        self.watchdog = watchdog
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url,
                                                                        tz_aware=True)
        self.repository: ReadModelRepository | None = None
        self.processor: BatchProcessor | None = None

    async def publish_rejections(self, rejections: list[RejectedEvent]) -> None:
        futures = [
            await self.rejected.publish(r, key=(r.shop_id or "unknown").encode(),
                                        no_confirm=True)
            for r in rejections
        ]
        if futures:
            await asyncio.gather(*futures)

    async def apply(self, msg: KafkaMessage) -> None:
        """One batch of return events, durable before its offsets are committed."""
        processor = self.processor
        if processor is None:
            raise RuntimeError("a batch before the state machine started")
        deliveries = [Delivery(r.topic, r.partition, r.offset, r.value) for r in msg.raw_message]
        self.watchdog.busy = True
        try:
            with metrics.BATCH_SECONDS.time(), while_applying(
                    msg.consumer, len(deliveries), self.settings.state_machine_max_batch):
                await retry_forever("apply batch", lambda: processor.process(deliveries))
            await msg.ack()
            metrics.PROGRESS.committed({d.partition for d in deliveries})
        finally:
            self.watchdog.busy = False
            self.watchdog.last_progress = time.monotonic()

    async def record(self, msg: KafkaMessage) -> None:
        """One batch of the rejected topic, recorded for the query API."""
        repository = self.repository
        if repository is None:
            raise RuntimeError("a batch before the state machine started")
        rejections = []
        for record in msg.raw_message:
            try:
                rejections.append(RejectedEvent.model_validate_json(record.value or b""))
            except ValueError:
                log.error("unreadable record on the rejected topic, kept on the topic",
                          partition=record.partition, offset=record.offset)
        await retry_forever("record rejections", lambda: record_each(repository, rejections))
        await msg.ack()

    async def start(self) -> None:
        settings = self.settings
        bootstrap = settings.kafka_bootstrap_servers
        await retry_forever("create topics", lambda: ensure_topics(bootstrap))
        db = self.mongo.get_database(settings.mongodb_database)
        if not settings.state_machine_collection:
            await retry_forever("check the read model", lambda: check_schema(db))
        read_model = ActiveReadModel(self.mongo, settings.mongodb_database,
                                     settings.state_machine_collection,
                                     settings.state_machine_cache_returns)
        self.repository = await retry_forever("create indexes", read_model)

        async def healthy() -> bool:
            try:  # a read of a collection: FerretDB answers a ping without its PostgreSQL
                await db[META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
                return True
            except Exception as exc:  # a probe: any failure means "not healthy"
                log.warning("store health probe failed", error=repr(exc))
                return False

        self.processor = BatchProcessor(read_model, self.publish_rejections, healthy)
        serve_metrics(settings)
        log.info("state machine starting", collection=self.repository.returns.name,
                 metrics=f"http://{settings.state_machine_metrics_host}:"
                         f"{settings.state_machine_metrics_port}/metrics")


def create_app(settings: Settings) -> tuple[FastStream, Watchdog]:
    configure_logging(settings.log_level)
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True,
        client_id="returns-state-machine",
        log_level=logging.DEBUG,  # one line per batch is noise at INFO; our own logs say more
    )
    rejected = broker.publisher(
        REJECTED_TOPIC, title="rejected events", schema=RejectedEvent,
        description="Events it cannot apply (invalid or forbidden transitions, undecodable "
                    "or unprocessable records); key = shop_id or 'unknown'",
    )
    watchdog = Watchdog(settings)
    service = Service(settings, rejected, watchdog)
    state: dict[str, asyncio.Task[None]] = {}

    @broker.subscriber(
        EVENTS_TOPIC,
        group_id=settings.state_machine_group_id,
        batch=True,
        max_records=settings.state_machine_max_batch,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_records,
        max_poll_interval_ms=15 * 60 * 1000,
        title="return events",
        description="Return changes, folded into the read model in batches; key = "
                    "shop_id:return_id",
    )
    async def on_events(_: list[bytes | None], msg: KafkaMessage) -> None:
        await service.apply(msg)

    @broker.subscriber(
        REJECTED_TOPIC,
        group_id=f"{settings.state_machine_group_id}-rejections",
        batch=True,
        max_records=settings.state_machine_max_batch,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_records,
        title="rejected events (recorded for the API)",
        description="Every rejection, of the ingestor and of the state machine, stored for the "
                    "query API",
    )
    async def on_rejections(_: list[bytes | None], msg: KafkaMessage) -> None:
        await service.record(msg)

    app = FastStream(broker, specification=AsyncAPI(
        title="TikTok returns state machine", version=version("returns-state-machine"),
        description=ASYNCAPI_DESCRIPTION))

    app.on_startup(service.start)

    @app.after_startup
    async def watch() -> None:
        state["watchdog"] = asyncio.create_task(watchdog.watch(app))

    @app.after_shutdown
    async def stop() -> None:
        if "watchdog" in state:
            state["watchdog"].cancel()
        await service.mongo.close()

    return app, watchdog


async def record_each(repository: ReadModelRepository, rejections: list[RejectedEvent]) -> None:
    """Record the rejections; one that cannot be stored is logged and left on the topic,
    never retried without end."""
    try:
        await repository.record_rejections(rejections)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        if len(rejections) > 1:
            for rejection in rejections:
                await record_each(repository, [rejection])
            return
        metrics.POISON.labels(type(exc).__name__).inc()
        log.error("rejection could not be recorded; it stays on the rejected topic",
                  rejection_id=rejections[0].rejection_id, error=repr(exc))


_metrics_served: list[int] = []


def serve_metrics(settings: Settings) -> None:
    """Once per process, also when the app is started again after a stall."""
    if not _metrics_served:
        start_http_server(settings.state_machine_metrics_port, settings.state_machine_metrics_host)
        _metrics_served.append(settings.state_machine_metrics_port)
