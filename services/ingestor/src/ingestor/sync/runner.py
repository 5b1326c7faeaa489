"""Runs sync jobs concurrently, shop by shop: up to SYNC_CONCURRENCY syncs at once, one shop's
commands in order, so a shop whose sync runs or waits for its lease never holds up another.

A command is acknowledged on Kafka once its job is recorded and claimed (`SyncJobs.claim`);
from then on the job document is what keeps it: its owner's heartbeat is renewed while it is
queued here or running. A job whose heartbeat stopped for SYNC_JOB_STALE_SECONDS (its process
died) is found by every ingestor's recovery scan and taken over by one of them, which runs it
again from the unchanged checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from pymongo.errors import PyMongoError

from contracts.messages import SyncCommand
from runtime.sync_jobs import Document, SyncJobs

log = structlog.get_logger("ingestor.sync")

Run = Callable[[SyncCommand], Awaitable[Any]]


def command_of(job: Document) -> SyncCommand:
    """The command a job document was recorded for (to run it again)."""
    created = job.get("created_at")
    return SyncCommand(command_id=UUID(str(job["_id"])), shop_id=job["shop_id"],
                       since=job.get("since"), until=job.get("until"),
                       requested_by=str(job.get("requested_by") or "recovery"),
                       **({"requested_at": created} if isinstance(created, datetime) else {}))


class SyncRunner:
    def __init__(self, store: SyncJobs, run: Run, *, concurrency: int, stale_s: float,
                 ready: Callable[[], bool]) -> None:
        self._store = store
        self._run = run
        self._ready = ready  # Kafka connected: a job taken over before would fail at once
        self._slots = asyncio.Semaphore(concurrency)
        self._stale_s = stale_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._queues: dict[str, deque[SyncCommand]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()  # job ids queued or running here
        self._background: list[asyncio.Task[None]] = []

    def _stale_before(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self._stale_s)

    async def take(self, command: SyncCommand) -> bool:
        """Claim the command's job and queue it; False when another live worker has it."""
        job_id = str(command.command_id)
        if job_id in self._held:
            return True
        if not await self._store.claim(job_id, self.owner, self._stale_before()):
            log.info("sync_job_held_elsewhere", command_id=job_id, shop_id=command.shop_id)
            return False
        self._held.add(job_id)
        self._queues.setdefault(command.shop_id, deque()).append(command)
        if command.shop_id not in self._workers:
            self._workers[command.shop_id] = asyncio.create_task(self._drain(command.shop_id))
        return True

    async def _drain(self, shop_id: str) -> None:
        queue = self._queues[shop_id]
        try:
            while queue:
                command = queue.popleft()
                try:
                    async with self._slots:
                        await self._run(command)
                except asyncio.CancelledError:
                    raise
                except Exception:  # handle() records every outcome; this is a bug
                    log.exception("sync_run_crashed", command_id=str(command.command_id))
                finally:
                    self._held.discard(str(command.command_id))
        finally:
            self._workers.pop(shop_id, None)
            if not queue:
                self._queues.pop(shop_id, None)

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(max(0.5, self._stale_s / 6))
            try:
                await self._store.heartbeat(self.owner, sorted(self._held))
            except PyMongoError as exc:
                log.warning("sync_heartbeat_failed", error=str(exc))

    async def recover(self) -> int:
        """Take over the jobs whose worker stopped; how many were taken."""
        taken = 0
        for job in await self._store.orphans(self._stale_before()):
            command = command_of(job)
            if await self.take(command):
                log.warning("sync_job_taken_over", command_id=str(command.command_id),
                            shop_id=command.shop_id, previous_owner=job.get("owner"))
                taken += 1
        return taken

    async def _recover_forever(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self._stale_s / 3))
            if not self._ready():
                continue
            try:
                await self.recover()
            except PyMongoError as exc:
                log.warning("sync_recovery_failed", error=str(exc))
            except Exception:  # never let recovery die
                log.exception("sync_recovery_crashed")

    def start(self) -> None:
        self._background = [asyncio.create_task(self._heartbeat_forever()),
                            asyncio.create_task(self._recover_forever())]

    async def stop(self) -> None:
        """Cancel everything: a sync cut short is taken over once its heartbeat is stale."""
        tasks = [*self._background, *self._workers.values()]
        self._background = []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
