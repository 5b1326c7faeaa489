"""The one repository of Sync Return's MongoDB documents, used by the query API and the ingestor.

`sync_jobs` (one document per command, `_id` = command id):
    shop_id, status (queued -> running -> succeeded | failed), since, until (the window used),
    pages, returns_seen, events_published, rejected, error, requested_by, attempts,
    created_at, started_at, finished_at, and once an ingestor took it `owner` (the process)
    and `heartbeat_at` (renewed while it is queued there or running). A queued or running
    job without a heartbeat for SYNC_JOB_STALE_SECONDS lost its worker: another ingestor
    takes it over (`orphans`, `claim`), and the query API fails it (`fail_stale`) rather than
    let it block the shop's next sync.
The query API queues the document before it publishes the command (and withdraws it when Kafka
refuses the command); a command from elsewhere (CLI, reconciler) gets its document when the
ingestor receives it. The ingestor writes everything after that.

`sync_checkpoints` (one document per shop, `_id` = shop id):
    synced_until (everything updated before it has been fetched), last_success_at,
    last_command_id, and while a sync runs `lease` {token, command_id, expires_at}.
The lease keeps two processes from syncing one shop at once (commands are keyed by shop, so
normally one consumer handles them in order; the lease covers rebalances and stray processes).

A process's updates of job documents take turns (`_job_writes`): a job's runner and its
worker's heartbeat update the same document, and FerretDB v1 applies an update as a read of
the document, then a write of all of it, with nothing in between to stop another update: of
two at once, the later write undoes the earlier. A heartbeat that read a job just before its
runner wrote "succeeded" set it back to "running"; once its heartbeat aged, a recovery scan
ran the whole sync again. MongoDB updates a document atomically; the turns cost it nothing
that matters (a few small writes per page).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from contracts.messages import SyncCommand
from contracts.read_model import (
    SYNC_CHECKPOINTS_COLLECTION,
    SYNC_JOBS_COLLECTION,
    SYNC_JOBS_INDEXES,
    JobStatus,
)
from runtime.indexes import ensure_indexes

Document = dict[str, Any]

ACTIVE_JOB_STATUSES = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def queued_sync_job(command: SyncCommand, created_at: datetime | None = None) -> Document:
    """The `sync_jobs` document of a command nobody has started yet."""
    return {
        "_id": str(command.command_id),
        "shop_id": command.shop_id,
        "status": JobStatus.QUEUED.value,
        "since": command.since,
        "until": command.until,
        "requested_by": command.requested_by,
        "pages": 0,
        "returns_seen": 0,
        "events_published": 0,
        "rejected": 0,
        "error": None,
        "attempts": 0,
        "created_at": created_at or command.requested_at,
        "started_at": None,
        "finished_at": None,
    }


@dataclass(frozen=True)
class Checkpoint:
    shop_id: str
    synced_until: int | None
    last_success_at: datetime | None
    last_command_id: str | None


@dataclass(frozen=True)
class Lease:
    shop_id: str
    token: str
    command_id: str


class SyncJobs:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        db = client[database]
        self.jobs: AsyncCollection[Document] = db[SYNC_JOBS_COLLECTION]
        self.checkpoints: AsyncCollection[Document] = db[SYNC_CHECKPOINTS_COLLECTION]
        self._indexed = False
        self._job_writes = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        if self._indexed:
            return
        await ensure_indexes(self.jobs, SYNC_JOBS_INDEXES)
        self._indexed = True

    # ---------------------------------------------------------------------------------- jobs

    async def queue(self, command: SyncCommand) -> None:
        """Record a command about to be published (created at its request time)."""
        await self.jobs.insert_one(queued_sync_job(command))

    async def withdraw(self, job_id: str) -> None:
        """Remove a queued job whose command was never published."""
        await self.jobs.delete_one({"_id": job_id, "status": JobStatus.QUEUED.value})

    async def receive(self, command: SyncCommand) -> Document:
        """The job of a received command, created as queued if nobody recorded it yet."""
        job_id = str(command.command_id)
        found = await self.jobs.find_one({"_id": job_id})
        if found is not None:
            return found
        doc = queued_sync_job(command, created_at=utcnow())
        try:
            await self.jobs.insert_one(doc)
        except DuplicateKeyError:  # recorded meanwhile (the API's insert, or a race)
            again = await self.jobs.find_one({"_id": job_id})
            if again is not None:
                return again
        return doc

    async def start(self, job_id: str, since: int, until: int) -> None:
        async with self._job_writes:
            await self.jobs.update_one(
                {"_id": job_id},
                {"$set": {"status": JobStatus.RUNNING.value, "since": since, "until": until,
                          "started_at": utcnow(), "finished_at": None, "error": None,
                          "pages": 0, "returns_seen": 0, "events_published": 0,
                          "rejected": 0},
                 "$inc": {"attempts": 1}},
            )

    async def progress(self, job_id: str, counts: dict[str, int]) -> None:
        async with self._job_writes:
            await self.jobs.update_one({"_id": job_id}, {"$set": dict(counts)})

    async def finish(
        self, job_id: str, status: JobStatus, counts: dict[str, int], error: str | None,
        *, window: tuple[int, int] | None = None,
    ) -> None:
        update: Document = {**counts, "status": status.value, "error": error,
                            "finished_at": utcnow()}
        if window is not None:
            update["since"], update["until"] = window
        async with self._job_writes:
            await self.jobs.update_one({"_id": job_id}, {"$set": update})

    async def get_job(self, job_id: str) -> Document | None:
        return await self.jobs.find_one({"_id": job_id})

    async def claim(self, job_id: str, owner: str, stale_before: datetime) -> bool:
        """Make `owner` the job's worker unless another one holds it with a fresh heartbeat."""
        async with self._job_writes:
            taken = await self.jobs.find_one_and_update(
                {"_id": job_id, "status": {"$in": list(ACTIVE_JOB_STATUSES)},
                 "$or": [{"owner": {"$exists": False}}, {"owner": owner},
                         {"heartbeat_at": {"$lt": stale_before}}]},
                {"$set": {"owner": owner, "heartbeat_at": utcnow()}},
                return_document=ReturnDocument.AFTER,
            )
        return taken is not None and taken.get("owner") == owner

    async def heartbeat(self, owner: str, job_ids: list[str]) -> None:
        """Renew the heartbeat of these jobs while `owner` holds them; one update by `_id` each
        (FerretDB answers `$in` by reading the whole collection, every job ever run)."""
        if job_ids:
            now = utcnow()
            async with self._job_writes:
                await self.jobs.bulk_write(
                    [UpdateOne({"_id": job_id, "owner": owner}, {"$set": {"heartbeat_at": now}})
                     for job_id in job_ids], ordered=False)

    def _stale(self, stale_before: datetime) -> Document:
        return {"status": {"$in": list(ACTIVE_JOB_STATUSES)},
                "$or": [{"heartbeat_at": {"$lt": stale_before}},
                        {"heartbeat_at": {"$exists": False}, "created_at": {"$lt": stale_before}}]}

    async def orphans(self, stale_before: datetime, limit: int = 50) -> list[Document]:
        """Queued or running jobs whose worker stopped (or that no worker ever took)."""
        return await self.jobs.find(self._stale(stale_before)).limit(limit).to_list()

    async def fail_stale(self, shop_id: str, stale_before: datetime) -> int:
        """Fail the shop's jobs whose worker stopped, so they no longer hold the shop up."""
        async with self._job_writes:
            result = await self.jobs.update_many(
                {"shop_id": shop_id, **self._stale(stale_before)},
                {"$set": {"status": JobStatus.FAILED.value, "finished_at": utcnow(),
                          "error": "its worker stopped (no heartbeat for too long); "
                                   "run it again"}},
            )
        return result.modified_count

    async def active_job(self, shop_id: str) -> Document | None:
        """The shop's newest queued or running job."""
        return await self.jobs.find_one(
            {"shop_id": shop_id, "status": {"$in": list(ACTIVE_JOB_STATUSES)}},
            sort=[("created_at", -1)],
        )

    # ---------------------------------------------------------------------------------- checkpoint

    async def checkpoint(self, shop_id: str) -> Checkpoint | None:
        """The shop's checkpoint document; None when there is none. `synced_until` is None
        until a sync moved it (a successful sync may leave it where it was)."""
        doc = await self.checkpoints.find_one({"_id": shop_id})
        if doc is None:
            return None
        synced_until = doc.get("synced_until")
        return Checkpoint(
            shop_id=shop_id,
            synced_until=int(synced_until) if synced_until is not None else None,
            last_success_at=doc.get("last_success_at"),
            last_command_id=doc.get("last_command_id"),
        )

    async def acquire_lease(
        self, shop_id: str, command_id: str, ttl_s: float, now: datetime | None = None
    ) -> Lease | None:
        """Take the shop's lease when nobody holds it or it expired; None when held."""
        now = now or utcnow()
        token = uuid.uuid4().hex
        lease = {"token": token, "command_id": command_id,
                 "expires_at": now + timedelta(seconds=ttl_s)}
        # Make sure the document exists, then take the lease without an upsert: an upsert that
        # meets a held lease fails on the duplicate _id, and FerretDB 1.24 was seen to leak a
        # PostgreSQL connection on every such failure until its pool ran dry and it hung.
        await self.checkpoints.update_one(
            {"_id": shop_id}, {"$setOnInsert": {"_id": shop_id}}, upsert=True
        )
        taken = await self.checkpoints.find_one_and_update(
            {"_id": shop_id,
             "$or": [{"lease": {"$exists": False}}, {"lease.expires_at": {"$lt": now}}]},
            {"$set": {"lease": lease}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is None or taken.get("lease", {}).get("token") != token:
            return None
        return Lease(shop_id, token, command_id)

    async def lease_holder(self, shop_id: str) -> str | None:
        doc = await self.checkpoints.find_one({"_id": shop_id})
        lease = (doc or {}).get("lease")
        return str(lease.get("command_id")) if isinstance(lease, dict) else None

    async def renew_lease(self, lease: Lease, ttl_s: float) -> bool:
        result = await self.checkpoints.update_one(
            {"_id": lease.shop_id, "lease.token": lease.token},
            {"$set": {"lease.expires_at": utcnow() + timedelta(seconds=ttl_s)}},
        )
        return result.matched_count == 1

    async def release_lease(self, lease: Lease) -> None:
        await self.checkpoints.update_one(
            {"_id": lease.shop_id, "lease.token": lease.token}, {"$unset": {"lease": ""}})

    async def succeed(self, lease: Lease, synced_until: int | None) -> bool:
        """Record a successful sync and release the lease in one write; `synced_until` None
        leaves the checkpoint where it was. False when the lease was lost meanwhile."""
        update: Document = {"last_success_at": utcnow(), "last_command_id": lease.command_id}
        if synced_until is not None:
            update["synced_until"] = synced_until
        result = await self.checkpoints.update_one(
            {"_id": lease.shop_id, "lease.token": lease.token},
            {"$set": update, "$unset": {"lease": ""}},
        )
        return result.matched_count == 1
