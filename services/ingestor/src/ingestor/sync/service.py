"""One sync command run to its recorded outcome, and the wiring of the ingestor's sync parts.

For each command the ingestor

1. records the job in `sync_jobs` (queued; a redelivered command whose job already succeeded or
   failed is acknowledged and not run again, nor is a job taken over whose sync had already
   moved the checkpoint when its worker stopped);
2. takes the shop's lease (`lease.py`), renewed while the sync runs;
3. resolves the window (`window.py`);
4. pages through TikTok: every mapped `ReturnEvent` goes to EVENTS_TOPIC, every record that
   cannot be mapped to REJECTED_TOPIC; each page is one batch acknowledged by Kafka before the
   next page is fetched, and its counts are written to the job;
5. only when every page is published, advances the checkpoint (and releases the lease in the
   same write), then marks the job succeeded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import structlog
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from contracts.messages import ReturnEvent, SyncCommand
from contracts.read_model import FINISHED_JOB_STATUSES, JobStatus
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import IngestorMetrics, SyncResult
from ingestor.rejections import Rejected, sync_rejection
from ingestor.settings import Settings
from ingestor.shops.renewal import ShopUnavailable
from ingestor.shops.service import Shops
from ingestor.sync.clients import ShopClients
from ingestor.sync.consumer import decode_or_reject, subscribe
from ingestor.sync.enrichment import Enricher
from ingestor.sync.job import Counts, SyncFailed, api_error_text, until_stored
from ingestor.sync.lease import acquire_lease, with_heartbeat
from ingestor.sync.reconciler import Reconciler
from ingestor.sync.runner import SyncRunner
from ingestor.sync.window import Window, WindowError, resolve_window
from ingestor.tiktok_client import TikTokApiError
from runtime.mongo import mongo_client
from runtime.sync_jobs import Document, SyncJobs

log = structlog.get_logger("ingestor.sync")


@dataclass
class SyncService:
    """Sync-command consumer, webhook enrichment and reconciler of one ingestor process."""

    settings: Settings
    bus: KafkaBus
    metrics: IngestorMetrics
    mongo: AsyncMongoClient[Document] | None = None
    clock: Callable[[], float] = time.time
    transport: httpx.AsyncBaseTransport | None = None
    # None: the connected shops of the `shops` collection (`shops` below); tests pass their own.
    clients: ShopClients | None = None
    store: SyncJobs = field(init=False)
    shops: Shops | None = field(default=None, init=False)
    enricher: Enricher = field(init=False)
    reconciler: Reconciler = field(init=False)
    runner: SyncRunner = field(init=False)

    def __post_init__(self) -> None:
        if self.mongo is None:
            self.mongo = mongo_client(self.settings.mongodb_url,
                                      self.settings.mongodb_timeout_ms)
        self.store = SyncJobs(self.mongo, self.settings.mongodb_database)
        if self.clients is None:
            self.shops = Shops(self.settings, self.mongo, self.transport)
            self.clients = self.shops.directory
        self.enricher = Enricher(self.settings, self._clients, self.bus, self.metrics)
        self.reconciler = Reconciler(self.settings, self.bus, self.metrics, self._shop_ids)
        self.runner = SyncRunner(self.store, self.handle,
                                 concurrency=self.settings.sync_concurrency,
                                 stale_s=self.settings.sync_job_stale_seconds,
                                 ready=lambda: self.bus.connected)

    @property
    def _clients(self) -> ShopClients:
        assert self.clients is not None  # set in __post_init__
        return self.clients

    async def _shop_ids(self) -> list[str]:
        """The shops the reconciler syncs: every connected one."""
        if self.shops is None:
            return [shop.shop_id for shop in self.settings.tiktok_shops]
        await self.shops.wait_ready()
        return await self.shops.repo.connected()

    # ------------------------------------------------------------------ lifecycle (create_app)

    async def start(self) -> None:
        self.reconciler.start()
        self.runner.start()

    async def stop(self) -> None:
        """Before Kafka stops: no more syncs, enrichment or reconciliation."""
        await self.runner.stop()
        await self.enricher.stop()
        await self.reconciler.stop()

    async def close(self) -> None:
        """After Kafka stopped (no handler runs any more)."""
        await self._clients.aclose()
        if self.mongo is not None:
            await self.mongo.close()

    # ------------------------------------------------------------------ the consumer

    def register(self, broker: KafkaBroker) -> None:
        """Subscribe to SYNC_COMMANDS_TOPIC on the ingestor's broker (started with the app)."""
        subscribe(broker, self.settings.sync_group_id, self.on_record)

    async def on_record(self, value: bytes | None, partition: int | None,
                        offset: int | None) -> None:
        """Record the command's job and hand it to the runner; the record is acknowledged
        then (the job document keeps it from here on)."""
        command = await decode_or_reject(self.bus, value, partition, offset)
        if command is None:
            return
        job = await until_stored("receive", lambda: self.store.receive(command))
        if job.get("status") in FINISHED_JOB_STATUSES:
            log.info("sync_command_already_done", command_id=str(command.command_id),
                     status=job.get("status"))
            self.metrics.sync_jobs.labels(result=SyncResult.SKIPPED.value).inc()
            return
        await until_stored("claim", lambda: self.runner.take(command))

    def enrich_later(self, event: ReturnEvent) -> None:
        """See `Enricher.enrich_later` (the app's `on_webhook`)."""
        self.enricher.enrich_later(event)

    # ------------------------------------------------------------------ the sync

    async def handle(self, command: SyncCommand) -> SyncResult:
        """Run one command to its recorded outcome (returns once the job says so)."""
        job_id = str(command.command_id)
        shop_id = command.shop_id
        bound = log.bind(command_id=job_id, shop_id=shop_id)
        try:  # best effort: the ingestor's own queries go by _id; the API's need them
            await self.store.ensure_indexes()
        except PyMongoError as exc:
            bound.warning("sync_indexes_failed", error=str(exc))
        job: Document = await until_stored("receive", lambda: self.store.receive(command))
        if job.get("status") in FINISHED_JOB_STATUSES:
            bound.info("sync_command_already_done", status=job.get("status"))
            self.metrics.sync_jobs.labels(result=SyncResult.SKIPPED.value).inc()
            return SyncResult.SKIPPED
        if job.get("attempts") and await self._found_done(job, shop_id):
            return SyncResult.SUCCEEDED

        counts = Counts()
        window: Window | None = None
        started = time.perf_counter()
        ttl = self.settings.sync_lease_seconds
        try:
            problem = await self._clients.problem(shop_id)
            if problem is not None:
                raise SyncFailed(problem)
            lease = await acquire_lease(self.store, shop_id, job_id, ttl_s=ttl,
                                        wait_s=self.settings.sync_lease_wait_seconds)
            try:
                window = await self._window(command)
                await until_stored("start",
                                   lambda: self.store.start(job_id, window.since, window.until))
                bound.info("sync_started", since=window.since, until=window.until,
                           requested_by=command.requested_by)
                await with_heartbeat(self.store, lease, ttl,
                                     self._pages(job_id, shop_id, window, counts))
                done = await until_stored(
                    "checkpoint", lambda: self.store.succeed(lease, window.checkpoint_after))
                if not done:
                    raise SyncFailed("lost the shop's sync lease (another process took over "
                                     "after it expired); the checkpoint was not moved")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.store.release_lease(lease)
                raise
        except (SyncFailed, TikTokApiError, PublishError, WindowError, ShopUnavailable) as exc:
            error = api_error_text(exc) if isinstance(exc, TikTokApiError) else str(exc)
            await self._finish(job_id, JobStatus.FAILED, counts, error, window)
            self.metrics.sync_jobs.labels(result=SyncResult.FAILED.value).inc()
            bound.warning("sync_failed", error=error, **counts.as_dict())
            return SyncResult.FAILED
        except Exception as exc:  # a bug or an unexpected answer: recorded, never silent
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            await self._finish(job_id, JobStatus.FAILED, counts, error, window)
            self.metrics.sync_jobs.labels(result=SyncResult.FAILED.value).inc()
            bound.exception("sync_crashed", **counts.as_dict())
            return SyncResult.FAILED
        await self._finish(job_id, JobStatus.SUCCEEDED, counts, None, window)
        elapsed = time.perf_counter() - started
        self.metrics.sync_jobs.labels(result=SyncResult.SUCCEEDED.value).inc()
        self.metrics.sync_seconds.observe(elapsed)
        bound.info("sync_succeeded", seconds=round(elapsed, 3),
                   checkpoint=window.checkpoint_after if window else None, **counts.as_dict())
        return SyncResult.SUCCEEDED

    async def _found_done(self, job: Document, shop_id: str) -> bool:
        """A job started before whose sync was done, as the shop's checkpoint says, while its
        worker stopped before the job did: recorded as succeeded, not fetched all again."""
        job_id = str(job["_id"])
        checkpoint = await until_stored("checkpoint", lambda: self.store.checkpoint(shop_id))
        if checkpoint is None or checkpoint.last_command_id != job_id:
            return False
        done = Counts(**{name: int(job.get(name) or 0) for name in Counts().as_dict()})
        await self._finish(job_id, JobStatus.SUCCEEDED, done, None, None)
        self.metrics.sync_jobs.labels(result=SyncResult.SUCCEEDED.value).inc()
        log.warning("sync_job_found_done", command_id=job_id, shop_id=shop_id,
                    **done.as_dict())
        return True

    async def _finish(self, job_id: str, status: JobStatus, counts: Counts, error: str | None,
                      window: Window | None) -> None:
        span = (window.since, window.until) if window is not None else None
        await until_stored("finish", lambda: self.store.finish(
            job_id, status, counts.as_dict(), error, window=span))

    async def _window(self, command: SyncCommand) -> Window:
        checkpoint = await until_stored("checkpoint",
                                        lambda: self.store.checkpoint(command.shop_id))
        return resolve_window(
            command.since, command.until,
            checkpoint.synced_until if checkpoint else None,
            self.settings.sync_overlap_seconds, int(self.clock()),
        )

    async def _pages(self, job_id: str, shop_id: str, window: Window, counts: Counts) -> None:
        client = await self._clients.client(shop_id)
        async for page in client.iter_returns(window.since, window.until):
            now = datetime.now(UTC)
            events = [r for r in page.results if isinstance(r, ReturnEvent)]
            rejections = [sync_rejection(r, now) for r in page.results if isinstance(r, Rejected)]
            await self.bus.publish_batch(events, rejections)
            counts.pages += 1
            counts.returns_seen += len(page.raw)
            counts.events_published += len(events)
            counts.rejected += len(rejections)
            self.metrics.sync_pages.inc()
            if events:
                self.metrics.sync_published.labels(topic=EVENTS_TOPIC).inc(len(events))
            if rejections:
                self.metrics.sync_published.labels(topic=REJECTED_TOPIC).inc(len(rejections))
            await until_stored("progress",
                               lambda: self.store.progress(job_id, counts.as_dict()))
