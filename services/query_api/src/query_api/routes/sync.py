"""Sync Return endpoints of the query API: ask for a sync, follow its job, see a shop's status.

- `POST /api/v1/sync` records a queued job in `sync_jobs`, then publishes a `SyncCommand`
  (key = shop id) to SYNC_COMMANDS_TOPIC and answers 202 once Kafka acknowledged it (503 when
  Kafka is unreachable; the job document is then removed again). While a sync of the shop is
  queued or running it answers 429 with Retry-After; a job whose worker stopped (no heartbeat
  for SYNC_JOB_STALE_SECONDS) is marked failed first, so it never blocks the shop for good.
- `GET /api/v1/sync/status?shop_id=` the shop's checkpoint (last successful sync) and its
  queued or running job, if any.
- `GET /api/v1/sync/{command_id}` one job with its counts.

The ingestor runs the command and writes the job's progress (see `ingestor.sync`); both read
and write the job and checkpoint documents through `runtime.sync_jobs.SyncJobs`. Register with
`app.include_router(sync_router(settings))`: the router's lifespan opens its MongoDB client and
its Kafka producer (connected in the background, and again on demand after a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymongo.errors import PyMongoError

from contracts.messages import SyncCommand
from contracts.read_model import JobStatus
from contracts.topics import SYNC_COMMANDS_TOPIC
from query_api.auth import Caller
from query_api.deps import Lifespan
from query_api.models import ErrorMessage
from query_api.openapi import CALLER_ERRORS
from query_api.publisher import KafkaPublisher, KafkaUnavailable
from query_api.settings import Settings
from runtime.sync_jobs import Document, SyncJobs
from runtime.tasks import cancel_and_wait

log = structlog.get_logger("query_api.sync")

RETRY_AFTER_S = 5  # while a sync of the shop is queued or running


# ---------------------------------------------------------------------------------- models


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop_id: str = Field(min_length=1, max_length=128)
    since: int | None = Field(
        default=None, ge=0,
        description="update time from (unix s); null: the shop's last sync minus an overlap")
    until: int | None = Field(
        default=None, ge=0, description="update time to (unix s); null: now, when it starts")

    @model_validator(mode="after")
    def _ordered(self) -> SyncRequest:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("since must not be after until")
        return self


class SyncAccepted(BaseModel):
    command_id: UUID
    status: Literal["queued"] = "queued"


class SyncJob(BaseModel):
    command_id: UUID
    shop_id: str
    status: JobStatus
    pages: int = Field(description="pages fetched from TikTok")
    returns_seen: int = Field(description="return records TikTok sent")
    events_published: int = Field(description="events published to the events topic")
    rejected: int = Field(description="records that could not be mapped (rejected topic)")
    error: str | None = Field(description="why the job failed; null otherwise")
    since: int | None = Field(description="update time from (unix s): requested, then used")
    until: int | None = Field(description="update time to (unix s): requested, then used")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_document(cls, doc: Document) -> SyncJob:
        def count(name: str) -> int:
            return int(doc.get(name) or 0)

        return cls(
            command_id=UUID(str(doc["_id"])),
            shop_id=doc["shop_id"],
            status=doc.get("status", JobStatus.QUEUED),
            pages=count("pages"),
            returns_seen=count("returns_seen"),
            events_published=count("events_published"),
            rejected=count("rejected"),
            error=doc.get("error"),
            since=doc.get("since"),
            until=doc.get("until"),
            created_at=_utc(doc.get("created_at")) or datetime.now(UTC),
            started_at=_utc(doc.get("started_at")),
            finished_at=_utc(doc.get("finished_at")),
        )


class SyncStatus(BaseModel):
    shop_id: str
    last_success_at: datetime | None = Field(description="when the last sync succeeded")
    synced_until: int | None = Field(
        description="every change before this time (unix s) has been fetched")
    running: SyncJob | None = Field(description="the newest queued or running job, if any")


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------- adapters


# ---------------------------------------------------------------------------------- routes


def _state(request: Request) -> tuple[SyncJobs, KafkaPublisher]:
    return request.app.state.sync_jobs, request.app.state.sync_publisher


def _lifespan(settings: Settings) -> Lifespan:
    """Opens the sync jobs' repository on the app's MongoDB client and the command publisher."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Runs inside the app's own lifespan (FastAPI nests router lifespans), which opened
        # the MongoDB client: reuse it rather than a second pool to the same server.
        jobs = SyncJobs(app.state.mongo, settings.mongodb_database)
        publisher = KafkaPublisher(settings.kafka_bootstrap_servers)
        app.state.sync_jobs = jobs
        app.state.sync_publisher = publisher
        try:
            await jobs.ensure_indexes()
        except PyMongoError as exc:  # created by the ingestor too; queries work without
            log.warning("sync_indexes_failed", error=str(exc))
        connecting = asyncio.create_task(publisher.connect())  # warm up, never blocks start
        try:
            yield
        finally:
            await cancel_and_wait(connecting)
            await publisher.close()

    return lifespan


def sync_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/sync", tags=["sync"], lifespan=_lifespan(settings))

    @router.post(
        "",
        status_code=202,
        response_model=SyncAccepted,
        responses={
            503: {"model": ErrorMessage, "description": "Kafka or MongoDB unreachable"},
            429: {"model": ErrorMessage, "description": "a sync of this shop is queued or "
                  "running; try again after Retry-After seconds"},
            **CALLER_ERRORS,
        },
        summary="Sync Return: fetch new or changed returns of a shop from TikTok Shop",
    )
    async def request_sync(body: SyncRequest, request: Request, caller: Caller) -> SyncAccepted:
        caller.require(body.shop_id)
        jobs, publisher = _state(request)
        command = SyncCommand(shop_id=body.shop_id, since=body.since, until=body.until,
                              requested_by="api")
        job_id = str(command.command_id)
        stale_before = datetime.now(UTC) - timedelta(seconds=settings.sync_job_stale_seconds)
        try:
            if await jobs.fail_stale(body.shop_id, stale_before):
                log.warning("sync_job_worker_stopped", shop_id=body.shop_id)
            active = await jobs.active_job(body.shop_id)
        except PyMongoError as exc:
            raise HTTPException(503, "the database is not reachable") from exc
        if active is not None:
            raise HTTPException(
                429, f"a sync of shop {body.shop_id} is already {active.get('status')} "
                f"(command {active['_id']}); try again when it is done",
                headers={"Retry-After": str(RETRY_AFTER_S)})
        try:
            await jobs.queue(command)
        except PyMongoError as exc:
            log.warning("sync_job_insert_failed", error=str(exc))
            raise HTTPException(503, "the database is not reachable") from exc
        try:
            await publisher.publish(command, SYNC_COMMANDS_TOPIC, command.shop_id)
        except KafkaUnavailable as exc:
            log.warning("sync_command_publish_failed", shop_id=body.shop_id, error=str(exc))
            with contextlib.suppress(PyMongoError):
                await jobs.withdraw(job_id)
            raise HTTPException(503, "the event bus (Kafka) is not reachable; retry later"
                                ) from exc
        log.info("sync_requested", command_id=job_id, shop_id=body.shop_id,
                 since=body.since, until=body.until)
        return SyncAccepted(command_id=command.command_id)

    # Registered before `/{command_id}`, which would otherwise match "status".
    @router.get(
        "/status",
        response_model=SyncStatus,
        responses={400: {"model": ErrorMessage, "description": "invalid parameters"},
                   **CALLER_ERRORS},
        summary="A shop's last successful sync and its queued or running job",
    )
    async def sync_status(
        request: Request,
        caller: Caller,
        shop_id: Annotated[str, Query(min_length=1, max_length=128)],
    ) -> SyncStatus:
        caller.require(shop_id)
        jobs, _ = _state(request)
        try:
            checkpoint = await jobs.checkpoint(shop_id)
            active = await jobs.active_job(shop_id)
        except PyMongoError as exc:
            raise HTTPException(503, "the database is not reachable") from exc
        return SyncStatus(
            shop_id=shop_id,
            last_success_at=_utc(checkpoint.last_success_at) if checkpoint else None,
            synced_until=checkpoint.synced_until if checkpoint else None,
            running=SyncJob.from_document(active) if active is not None else None,
        )

    @router.get(
        "/{command_id}",
        response_model=SyncJob,
        responses={404: {"model": ErrorMessage, "description": "no such sync job"},
                   **CALLER_ERRORS},
        summary="One sync job: status, window and counts",
    )
    async def get_sync_job(command_id: UUID, request: Request, caller: Caller) -> SyncJob:
        jobs, _ = _state(request)
        try:
            doc = await jobs.get_job(str(command_id))
        except PyMongoError as exc:
            raise HTTPException(503, "the database is not reachable") from exc
        if doc is None:
            raise HTTPException(404, f"sync job {command_id} not found")
        caller.require(str(doc.get("shop_id")))
        return SyncJob.from_document(doc)

    return router
