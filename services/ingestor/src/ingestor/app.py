"""HTTP entrypoint of the ingestor (wiring only): TikTok webhooks in (`ingestor.routes.webhooks`),
Kafka messages out; health, metrics and the AsyncAPI document (`ingestor.routes.meta`); the sync
service beside it (`ingestor.sync`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from importlib.metadata import version
from typing import Protocol

import structlog
from fastapi import FastAPI
from faststream.specification import AsyncAPI

from contracts.messages import ReturnEvent
from ingestor.deadline_watch import DeadlineWatch
from ingestor.decisions import DecisionService
from ingestor.internal_api import internal_router
from ingestor.kafka import KafkaBus
from ingestor.metrics import IngestorMetrics
from ingestor.routes import meta
from ingestor.routes.webhooks import WebhookIntake, webhook_router
from ingestor.settings import Settings
from ingestor.sync import SyncService
from runtime.retry import until_done
from runtime.tasks import cancel_and_wait

TITLE = "TikTok returns ingestor"
ASYNCAPI_DESCRIPTION = (
    "The ingestor's Kafka side: the canonical return events it publishes from TikTok webhooks "
    "and Sync Return, what it could not map, the reconciler's sync commands, and the sync "
    "commands it handles. The HTTP side (POST /webhooks/tiktok) is in its OpenAPI at /docs."
)
RECONNECT_MAX_BACKOFF_S = 30.0

log = structlog.get_logger("ingestor")


class Background(Protocol):
    """Something that runs beside the app (e.g. `ingestor.sync.SyncService`)."""

    async def start(self) -> None: ...  # before the first Kafka connection attempt

    async def stop(self) -> None: ...  # before Kafka stops

    async def close(self) -> None: ...  # after Kafka stopped


async def _connect_until_up(
    bus: KafkaBus, settings: Settings, first_attempt_done: asyncio.Event
) -> None:
    """Connect to Kafka, retrying with backoff: the app serves (503s) while Kafka is down.
    `first_attempt_done` is set once the first attempt is over, connected or not."""

    async def attempt() -> None:
        try:
            async with asyncio.timeout(settings.kafka_connect_timeout_s):
                await bus.start()
        except Exception:  # any failure to connect is retried
            first_attempt_done.set()
            with contextlib.suppress(Exception):
                await bus.stop()  # reset a half-started broker before the next attempt
            raise
        first_attempt_done.set()

    await until_done(f"connect to Kafka at {settings.kafka_bootstrap_servers}", attempt,
                     retry_on=Exception, initial_s=1.0, max_s=RECONNECT_MAX_BACKOFF_S)
    log.info("kafka_connected", bootstrap_servers=settings.kafka_bootstrap_servers)


def create_app(
    settings: Settings,
    bus: KafkaBus | None = None,
    *,
    metrics: IngestorMetrics | None = None,
    on_webhook: Callable[[ReturnEvent], None] | None = None,
    background: Sequence[Background] = (),
) -> FastAPI:
    """The ingestor app. Pass a `bus` whose broker already carries extra subscribers (e.g. the
    sync-command consumer) to have them started and stopped with the app.

    `on_webhook` is called (synchronously; it must not block) with the event of each webhook
    once Kafka acknowledged it, e.g. to fetch the return's details in the background (a legacy
    webhook has no amounts or items, neither generation's has TikTok's deadlines). It cannot
    change the answer: whatever it raises is logged and ignored.
    """
    kafka = bus if bus is not None else KafkaBus(settings)
    metrics = metrics if metrics is not None else IngestorMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for service in background:
            await service.start()
        first_attempt_done = asyncio.Event()
        connecting = asyncio.create_task(
            _connect_until_up(kafka, settings, first_attempt_done))
        # Serve once the first attempt is over, connected or not (then retries go on behind).
        await first_attempt_done.wait()
        try:
            yield
        finally:
            await cancel_and_wait(connecting)
            for service in background:
                await service.stop()
            await kafka.stop()
            for service in background:
                await service.close()

    app = FastAPI(title=TITLE, lifespan=lifespan)
    app.state.bus = kafka
    app.state.metrics = metrics
    app.state.asyncapi = AsyncAPI(kafka.broker, title=TITLE, version=version("returns-ingestor"),
                                  description=ASYNCAPI_DESCRIPTION)
    app.include_router(webhook_router(WebhookIntake(settings, kafka, metrics, on_webhook)))
    app.include_router(meta.router)
    return app


def create_service(settings: Settings) -> FastAPI:
    """The ingestor as `python -m ingestor` runs it: the webhook app and, on the same broker,
    the sync-command consumer, webhook enrichment and reconciler (`ingestor.sync`), the
    seller-decision consumer (`ingestor.decisions`), the deadline watch, and the query API's
    internal routes (reject reasons)."""
    bus = KafkaBus(settings)
    metrics = IngestorMetrics()
    # Subscribers are registered on `bus.broker` before the app starts it.
    sync = SyncService(settings, bus, metrics)
    sync.register(bus.broker)
    shops = sync.shops  # connected shops, their tokens and the authorization callback
    assert shops is not None
    assert sync.clients is not None
    decisions = DecisionService(settings, bus, sync.clients, metrics.registry)
    decisions.register(bus.broker)
    deadlines = DeadlineWatch(settings, metrics.registry)
    app = create_app(settings, bus, metrics=metrics, on_webhook=sync.enrich_later,
                     background=[shops, sync, decisions, deadlines])
    app.include_router(internal_router(settings, sync.clients))
    app.include_router(shops.router())  # TikTok's authorization redirect
    return app
