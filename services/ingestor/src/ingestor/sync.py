"""Sync Return: pull new or changed returns of a shop from TikTok Shop into the events topic.

A `SyncCommand` (from the query API, the CLI or the periodic reconciler) arrives on
SYNC_COMMANDS_TOPIC, keyed by shop id: every command of one shop lands on one partition and is
handled by one consumer, in order. For each command the ingestor

1. records the job in `sync_jobs` (queued; a redelivered command whose job already succeeded or
   failed is acknowledged and not run again);
2. takes the shop's lease on its `sync_checkpoints` document (a find_one_and_update with an
   expiry, renewed while the sync runs), so two processes never sync one shop at once. A
   second command of the same shop, queued behind the first on the same partition, therefore
   starts after it and resumes from the checkpoint the first one left;
3. resolves the window (`resolve_window`): `since` = the command's, else the checkpoint's
   `synced_until` minus SYNC_OVERLAP_SECONDS, else 0; `until` = the command's, else the end of
   the current second (now + 1, exclusive);
4. pages through TikTok (`TikTokShopClient.iter_returns`): every mapped `ReturnEvent` goes to
   EVENTS_TOPIC (key shop:return), every record that cannot be mapped to REJECTED_TOPIC as a
   `RejectedEvent` with a deterministic id; each page is one batch acknowledged by Kafka
   (acks=all) before the next page is fetched, and its counts are written to the job;
5. only when every page is published, advances the checkpoint (and releases the lease in the
   same write), then marks the job succeeded. A sync that fails or dies half way leaves the
   checkpoint where it was: its command is not acknowledged (crash) or its job says failed,
   and the next sync fetches the same window again. Events published twice are deduplicated
   downstream (their identity is shop, return, status, update_time).

The Kafka offset of a command is committed (manual ack) only after its job's outcome is
written, so a process that crashes mid-sync gets the command redelivered to its successor,
which waits for the dead process's lease to expire and runs the sync again.

Also here: webhook enrichment (a legacy webhook carries no amounts or items: the return is
fetched in the background and published as a sync snapshot) and the periodic reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from contracts.messages import RejectedEvent, RejectionReason, ReturnEvent, SyncCommand, raw_text
from contracts.read_model import FINISHED_JOB_STATUSES, JobStatus
from contracts.topics import EVENTS_TOPIC, REJECTED_TOPIC, SYNC_COMMANDS_TOPIC
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import EnrichResult, IngestorMetrics, SyncResult
from ingestor.rejections import Rejected, sync_rejection
from ingestor.settings import Settings
from ingestor.sync_jobs import Document, Lease, SyncStore
from ingestor.tiktok_client import TikTokApiError, TikTokClientConfig, TikTokShopClient

log = structlog.get_logger("ingestor.sync")

MAX_POLL_INTERVAL_MS = 60 * 60 * 1000  # a long sync holds its command this long at most
LEASE_POLL_S = 1.0
ENRICH_CONCURRENCY = 8


# ---------------------------------------------------------------------------------- pure parts


class WindowError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    since: int
    until: int
    # The checkpoint to record when the sync succeeds; None leaves it where it is (the window
    # does not start at or before the checkpoint, so a gap would be declared synced).
    checkpoint_after: int | None


def resolve_window(
    since: int | None,
    until: int | None,
    synced_until: int | None,
    overlap_s: int,
    now: int,
) -> Window:
    """The update-time window [since, until) of a sync and where it moves the checkpoint.

    Without `since` the sync resumes `overlap_s` before the checkpoint (0 without one); without
    `until` it ends after the current second (`now + 1`, exclusive), so a change made just
    before the user pressed Sync is included. The checkpoint only moves forward, never beyond
    that (a future `until` has fetched nothing after now), and only when the window starts at
    or before it (a window after the checkpoint leaves a gap that has not been fetched).
    Changes made later in the current second are fetched again by the next sync's overlap.
    """
    if since is None:
        since = max(0, synced_until - overlap_s) if synced_until is not None else 0
    if until is None:
        until = now + 1
    if since > until:
        raise WindowError(f"since ({since}) is after until ({until})")
    covered = synced_until if synced_until is not None else 0
    reach = min(until, now + 1)
    checkpoint_after = None
    if since <= covered and (synced_until is None or reach > synced_until):
        checkpoint_after = reach
    return Window(since, until, checkpoint_after)


def undecodable_command(
    value: bytes | None, detail: str, partition: int | None, offset: int | None, at: datetime
) -> RejectedEvent:
    body = value or b""
    return RejectedEvent(
        rejection_id="ingestor-sync-command:" + hashlib.sha256(body).hexdigest(),
        reason=RejectionReason.UNDECODABLE,
        detail=f"sync command: {detail}",
        stage="ingestor",
        source_topic=SYNC_COMMANDS_TOPIC,
        source_partition=partition,
        source_offset=offset,
        raw=raw_text(body),
        rejected_at=at,
    )


def api_error_text(exc: TikTokApiError) -> str:
    """Readable, and free of secrets (the client never puts tokens in its errors)."""
    parts = [f"TikTok API refused the request: {exc.reason}"]
    extra = [f"code {exc.code}" if exc.code is not None else "",
             f"HTTP {exc.http_status}" if exc.http_status is not None else "",
             f"request_id {exc.request_id}" if exc.request_id else ""]
    extra = [e for e in extra if e]
    if extra:
        parts.append(f"({', '.join(extra)})")
    if exc.message and exc.message != exc.reason:
        parts.append(f"- {exc.message}")
    if exc.retryable:
        parts.append("[gave up after retries]")
    return " ".join(parts)


@dataclass
class Counts:
    pages: int = 0
    returns_seen: int = 0
    events_published: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"pages": self.pages, "returns_seen": self.returns_seen,
                "events_published": self.events_published, "rejected": self.rejected}


class SyncFailed(Exception):
    """The sync cannot be done; the message is the job's `error`."""


# ---------------------------------------------------------------------------------- clients


class ClientPool:
    """One TikTok client per configured shop, shared by syncs and webhook enrichment (so one
    rate limit applies to both)."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport  # tests: an in-process simulator
        self._clients: dict[str, TikTokShopClient] = {}

    def problem(self, shop_id: str) -> str | None:
        """Why this shop cannot be synced, or None."""
        try:
            self._config(shop_id)
        except SyncFailed as exc:
            return str(exc)
        return None

    def get(self, shop_id: str) -> TikTokShopClient:
        client = self._clients.get(shop_id)
        if client is None:
            client = TikTokShopClient(self._config(shop_id), transport=self._transport)
            self._clients[shop_id] = client
        return client

    def _config(self, shop_id: str) -> TikTokClientConfig:
        s = self._settings
        if not s.tiktok_api_base_url:
            raise SyncFailed("no TikTok API configured (TIKTOK_API_BASE_URL is empty)")
        shop = s.shop(shop_id)
        if shop is None:
            raise SyncFailed(f"shop {shop_id} is not configured (not in TIKTOK_SHOPS)")
        token = s.access_token_for(shop)
        if token is None:
            raise SyncFailed(f"shop {shop_id} has no access token (no access_token in "
                             "TIKTOK_SHOPS and TIKTOK_ACCESS_TOKEN is not set)")
        return TikTokClientConfig(
            base_url=s.tiktok_api_base_url,
            app_key=s.tiktok_app_key,
            app_secret=s.tiktok_app_secret.get_secret_value(),
            access_token=token,
            shop_id=shop.shop_id,
            api_version=shop.api_version,
            shop_cipher=shop.shop_cipher,
            requests_per_second=s.tiktok_requests_per_second,
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


# ---------------------------------------------------------------------------------- the sync


async def _retry_forever(what: str, action: Callable[[], Awaitable[Any]]) -> Any:
    """MongoDB writes that must happen before the command is acknowledged."""

    def before_sleep(state: RetryCallState) -> None:
        log.warning("sync_store_retry", what=what, attempt=state.attempt_number,
                    error=repr(state.outcome.exception() if state.outcome else None))

    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(multiplier=0.2, max=15),
        retry=retry_if_exception_type(PyMongoError),
        before_sleep=before_sleep,
    ):
        with attempt:
            return await action()
    raise AssertionError("unreachable")  # pragma: no cover


def _raw_value(message: Any) -> bytes | None:
    """FastStream decoder that leaves the bytes alone: the handler decodes the command."""
    value = message.raw_message.value
    return value if isinstance(value, bytes | None) else bytes(value)


@dataclass
class SyncService:
    """Sync-command consumer, webhook enrichment and reconciler of one ingestor process."""

    settings: Settings
    bus: KafkaBus
    metrics: IngestorMetrics
    mongo: AsyncMongoClient[Document] | None = None
    clock: Callable[[], float] = time.time
    transport: httpx.AsyncBaseTransport | None = None
    store: SyncStore = field(init=False)
    clients: ClientPool = field(init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _reconciler: asyncio.Task[None] | None = field(default=None, init=False)
    _enrich_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        if self.mongo is None:
            self.mongo = AsyncMongoClient(
                self.settings.mongodb_url,
                serverSelectionTimeoutMS=self.settings.mongodb_timeout_ms,
                connectTimeoutMS=self.settings.mongodb_timeout_ms,
                tz_aware=True,
            )
        self.store = SyncStore(self.mongo, self.settings.mongodb_database)
        self.clients = ClientPool(self.settings, self.transport)
        self._enrich_slots = asyncio.Semaphore(ENRICH_CONCURRENCY)

    # ------------------------------------------------------------------ lifecycle (create_app)

    async def start(self) -> None:
        if self.settings.sync_reconcile_minutes > 0 and self.settings.tiktok_shops:
            self._reconciler = asyncio.create_task(self._reconcile_forever())

    async def stop(self) -> None:
        """Before Kafka stops: no more enrichment or reconciliation."""
        tasks = [*self._tasks, *([self._reconciler] if self._reconciler else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reconciler = None

    async def close(self) -> None:
        """After Kafka stopped (no handler runs any more)."""
        await self.clients.aclose()
        if self.mongo is not None:
            await self.mongo.close()

    # ------------------------------------------------------------------ the consumer

    def register(self, broker: KafkaBroker) -> None:
        """Subscribe to SYNC_COMMANDS_TOPIC on the ingestor's broker (started with the app)."""

        @broker.subscriber(
            SYNC_COMMANDS_TOPIC,
            group_id=self.settings.sync_group_id,
            ack_policy=AckPolicy.MANUAL,
            decoder=_raw_value,
            auto_offset_reset="earliest",
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            # Not "sync commands": that titles the reconciler's publisher, and AsyncAPI channels
            # are keyed by title.
            title="sync commands (handled)",
            description="Sync Return requests; key = shop_id (one consumer per shop, in order)",
        )
        async def on_sync_command(body: bytes | None, msg: KafkaMessage) -> None:
            record = msg.raw_message
            await self.on_record(body, getattr(record, "partition", None),
                                 getattr(record, "offset", None))
            await msg.ack()

    async def on_record(self, value: bytes | None, partition: int | None,
                        offset: int | None) -> None:
        try:
            command = SyncCommand.model_validate_json(value or b"")
        except ValidationError as exc:
            rejection = undecodable_command(value, str(exc.errors(include_url=False)[:3]),
                                            partition, offset, datetime.now(UTC))
            log.error("sync_command_undecodable", partition=partition, offset=offset)
            await self._publish_until_done([], [rejection])
            return
        await self.handle(command)

    async def _publish_until_done(
        self, events: list[ReturnEvent], rejections: list[RejectedEvent]
    ) -> None:
        backoff = 0.5
        while True:
            try:
                await self.bus.publish_batch(events, rejections)
                return
            except PublishError as exc:
                log.warning("sync_publish_retry", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 15)

    async def handle(self, command: SyncCommand) -> SyncResult:
        """Run one command to its recorded outcome (returns once the job says so)."""
        job_id = str(command.command_id)
        shop_id = command.shop_id
        bound = log.bind(command_id=job_id, shop_id=shop_id)
        try:  # best effort: the ingestor's own queries go by _id; the API's need them
            await self.store.ensure_indexes()
        except PyMongoError as exc:
            bound.warning("sync_indexes_failed", error=str(exc))
        job: Document = await _retry_forever("receive", lambda: self.store.receive(command))
        if job.get("status") in FINISHED_JOB_STATUSES:
            bound.info("sync_command_already_done", status=job.get("status"))
            self.metrics.sync_jobs.labels(result=SyncResult.SKIPPED.value).inc()
            return SyncResult.SKIPPED

        counts = Counts()
        window: Window | None = None
        started = time.perf_counter()
        try:
            problem = self.clients.problem(shop_id)
            if problem is not None:
                raise SyncFailed(problem)
            lease = await self._acquire_lease(shop_id, job_id)
            try:
                window = await self._window(command)
                await _retry_forever("start",
                                     lambda: self.store.start(job_id, window.since, window.until))
                bound.info("sync_started", since=window.since, until=window.until,
                           requested_by=command.requested_by)
                await self._with_heartbeat(lease, self._pages(job_id, shop_id, window, counts))
                done = await _retry_forever(
                    "checkpoint", lambda: self.store.succeed(lease, window.checkpoint_after))
                if not done:
                    raise SyncFailed("lost the shop's sync lease (another process took over "
                                     "after it expired); the checkpoint was not moved")
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.store.release_lease(lease)
                raise
        except (SyncFailed, TikTokApiError, PublishError, WindowError) as exc:
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

    async def _finish(self, job_id: str, status: JobStatus, counts: Counts, error: str | None,
                      window: Window | None) -> None:
        span = (window.since, window.until) if window is not None else None
        await _retry_forever("finish", lambda: self.store.finish(
            job_id, status, counts.as_dict(), error, window=span))

    async def _window(self, command: SyncCommand) -> Window:
        checkpoint = await _retry_forever("checkpoint",
                                          lambda: self.store.checkpoint(command.shop_id))
        return resolve_window(
            command.since, command.until,
            checkpoint.synced_until if checkpoint else None,
            self.settings.sync_overlap_seconds, int(self.clock()),
        )

    async def _acquire_lease(self, shop_id: str, job_id: str) -> Lease:
        ttl = self.settings.sync_lease_seconds
        deadline = time.monotonic() + self.settings.sync_lease_wait_seconds
        waited = False
        while True:
            lease: Lease | None = await _retry_forever(
                "lease", lambda: self.store.acquire_lease(shop_id, job_id, ttl))
            if lease is not None:
                return lease
            holder = await self.store.lease_holder(shop_id)
            if time.monotonic() >= deadline:
                raise SyncFailed(f"another sync of shop {shop_id} is running (command {holder})"
                                 f"; gave up after {self.settings.sync_lease_wait_seconds:g} s")
            if not waited:
                log.info("sync_waiting_for_lease", shop_id=shop_id, command_id=job_id,
                         held_by=holder)
                waited = True
            await asyncio.sleep(LEASE_POLL_S)

    async def _with_heartbeat(self, lease: Lease, work: Awaitable[None]) -> None:
        ttl = self.settings.sync_lease_seconds

        async def beat() -> None:
            while True:
                await asyncio.sleep(ttl / 3)
                try:
                    if not await self.store.renew_lease(lease, ttl):
                        log.warning("sync_lease_lost", shop_id=lease.shop_id,
                                    command_id=lease.command_id)
                        return
                except PyMongoError as exc:
                    log.warning("sync_lease_renew_failed", error=str(exc))

        heartbeat = asyncio.create_task(beat())
        try:
            await work
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _pages(self, job_id: str, shop_id: str, window: Window, counts: Counts) -> None:
        client = self.clients.get(shop_id)
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
            await _retry_forever("progress",
                                 lambda: self.store.progress(job_id, counts.as_dict()))

    # ------------------------------------------------------------------ webhook enrichment

    def enrich_later(self, event: ReturnEvent) -> None:
        """After a legacy webhook's event is acknowledged: fetch the return in the background
        and publish it as a sync snapshot (amounts, items, tracking). Never raises."""
        if not self.settings.webhook_enrichment or self.clients.problem(event.shop_id):
            return
        task = asyncio.create_task(self._enrich(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enrich(self, event: ReturnEvent) -> None:
        result = EnrichResult.FAILED
        try:
            async with self._enrich_slots:
                found = await self.clients.get(event.shop_id).get_return(event.return_id)
                if found is None:
                    result = EnrichResult.NOT_FOUND
                elif isinstance(found, ReturnEvent):
                    await self.bus.publish_batch([found], [])
                    result = EnrichResult.PUBLISHED
                else:
                    await self.bus.publish_batch([], [sync_rejection(found, datetime.now(UTC))])
                    result = EnrichResult.REJECTED
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # logged and counted; the webhook was answered long ago
            log.warning("webhook_enrichment_failed", shop_id=event.shop_id,
                        return_id=event.return_id, error=str(exc))
        finally:
            self.metrics.enrichments.labels(result=result.value).inc()
        if result is not EnrichResult.FAILED:
            log.info("webhook_enriched", shop_id=event.shop_id, return_id=event.return_id,
                     result=result.value)

    # ------------------------------------------------------------------ reconciler

    async def _reconcile_forever(self) -> None:
        period = self.settings.sync_reconcile_minutes * 60
        while True:
            for shop in self.settings.tiktok_shops:
                await self._request_sync(shop.shop_id)
            await asyncio.sleep(period)

    async def _request_sync(self, shop_id: str) -> None:
        command = SyncCommand(shop_id=shop_id, requested_by="reconciler")
        backoff = 1.0
        while True:
            try:
                await self.bus.publish_sync_command(command)
            except PublishError as exc:  # Kafka not (yet) connected: try again
                log.info("reconcile_publish_retry", shop_id=shop_id, error=str(exc),
                         retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            self.metrics.reconcile_commands.inc()
            log.info("reconcile_sync_requested", shop_id=shop_id,
                     command_id=str(command.command_id))
            return
