"""A finished sync job stays finished while its worker's heartbeat runs beside it.

Real FerretDB. FerretDB v1 applies an update as a read of the document and a write of all of
it, with nothing between to stop another update of the same document: of two updates at once,
the later write undoes the earlier one. A heartbeat that read a job before its runner wrote
"succeeded" would set it back to "running"; its heartbeat then ages, and a recovery scan
runs the whole sync again (seen in CI: every return of the sync counted a duplicate).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pymongo import AsyncMongoClient

from contracts.messages import SyncCommand
from contracts.read_model import JobStatus
from runtime.sync_jobs import SyncJobs, utcnow
from tests.integration.harness import Doc

pytestmark = pytest.mark.integration

ROUNDS = 60


async def test_a_heartbeat_beside_the_last_writes_never_sets_a_finished_job_running(
    mongo: AsyncMongoClient[Doc],
) -> None:
    store = SyncJobs(mongo, f"jobs_{uuid.uuid4().hex[:8]}")
    owner = "worker-a"
    job_ids = []
    for _ in range(ROUNDS):
        command = SyncCommand(shop_id="shop-a", requested_by="test")
        job_id = str(command.command_id)
        await store.queue(command)
        assert await store.claim(job_id, owner, utcnow())
        await store.start(job_id, 0, 100)
        job_ids.append(job_id)

    async def finish(job_id: str) -> None:
        await store.progress(job_id, {"pages": 1, "returns_seen": 10})
        await store.finish(job_id, JobStatus.SUCCEEDED, {"pages": 1, "returns_seen": 10}, None)

    for job_id in job_ids:  # the runner's last writes while its heartbeat renews the job
        await asyncio.gather(finish(job_id), store.heartbeat(owner, [job_id]),
                             store.heartbeat(owner, [job_id]))

    statuses = [(await store.get_job(job_id) or {}).get("status") for job_id in job_ids]
    assert statuses == [JobStatus.SUCCEEDED.value] * ROUNDS
