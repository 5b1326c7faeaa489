"""The periodic reconciler: every SYNC_RECONCILE_MINUTES it asks for a sync of every connected
shop (a `SyncCommand` like the query API's), so changes a webhook missed still arrive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from pymongo.errors import PyMongoError

from contracts.messages import SyncCommand
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import IngestorMetrics
from ingestor.settings import Settings
from runtime.retry import until_done

log = structlog.get_logger("ingestor.sync")


class Reconciler:
    def __init__(self, settings: Settings, bus: KafkaBus, metrics: IngestorMetrics,
                 shops: Callable[[], Awaitable[list[str]]]) -> None:
        self._settings = settings
        self._shops = shops
        self._bus = bus
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Runs when SYNC_RECONCILE_MINUTES is positive."""
        if self._settings.sync_reconcile_minutes > 0:
            self._task = asyncio.create_task(self._reconcile_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _reconcile_forever(self) -> None:
        period = self._settings.sync_reconcile_minutes * 60
        while True:
            try:
                shop_ids = await self._shops()
            except PyMongoError as exc:  # the next round tries again
                log.warning("reconcile_shops_unreadable", error=str(exc))
                shop_ids = []
            for shop_id in shop_ids:
                await self._request_sync(shop_id)
            await asyncio.sleep(period)

    async def _request_sync(self, shop_id: str) -> None:
        command = SyncCommand(shop_id=shop_id, requested_by="reconciler")
        # Kafka not (yet) connected: try again.
        await until_done(f"reconciler: sync command of shop {shop_id}",
                         lambda: self._bus.publish_sync_command(command),
                         retry_on=PublishError, initial_s=1.0, max_s=30.0)
        self._metrics.reconcile_commands.inc()
        log.info("reconcile_sync_requested", shop_id=shop_id, command_id=str(command.command_id))
