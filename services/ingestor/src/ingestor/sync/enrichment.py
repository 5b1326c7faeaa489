"""Webhook enrichment: a legacy webhook carries no amounts, items or tracking, and neither
generation's webhook carries TikTok's deadlines (`seller_next_action_response`), so once a
webhook's event is acknowledged the return is fetched in the background and published as a
sync snapshot (the same change as the webhook's event: one history entry downstream)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog

from contracts.messages import ReturnEvent
from ingestor.kafka import KafkaBus
from ingestor.metrics import EnrichResult, IngestorMetrics
from ingestor.rejections import sync_rejection
from ingestor.settings import Settings
from ingestor.sync.clients import ShopClients

log = structlog.get_logger("ingestor.sync")

ENRICH_CONCURRENCY = 8


class Enricher:
    def __init__(self, settings: Settings, clients: ShopClients, bus: KafkaBus,
                 metrics: IngestorMetrics) -> None:
        self._settings = settings
        self._clients = clients
        self._bus = bus
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(ENRICH_CONCURRENCY)

    def enrich_later(self, event: ReturnEvent) -> None:
        """After a webhook's event is acknowledged: fetch the return in the background and
        publish it as a sync snapshot (amounts, items, tracking, deadlines). Never raises."""
        if not self._settings.webhook_enrichment:
            return
        task = asyncio.create_task(self._enrich(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the enrichments still running (before Kafka stops)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _enrich(self, event: ReturnEvent) -> None:
        if await self._clients.problem(event.shop_id) is not None:
            return  # a shop we cannot call: nothing to count
        result = EnrichResult.FAILED
        try:
            async with self._slots:
                client = await self._clients.client(event.shop_id)
                found = await client.get_return(event.return_id)
                if found is None:
                    result = EnrichResult.NOT_FOUND
                elif isinstance(found, ReturnEvent):
                    await self._bus.publish_batch([found], [])
                    result = EnrichResult.PUBLISHED
                else:
                    await self._bus.publish_batch([], [sync_rejection(found, datetime.now(UTC))])
                    result = EnrichResult.REJECTED
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # logged and counted; the webhook was answered long ago
            log.warning("webhook_enrichment_failed", shop_id=event.shop_id,
                        return_id=event.return_id, error=str(exc))
        finally:
            self._metrics.enrichments.labels(result=result.value).inc()
        if result is not EnrichResult.FAILED:
            log.info("webhook_enriched", shop_id=event.shop_id, return_id=event.return_id,
                     result=result.value)
