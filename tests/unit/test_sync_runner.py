"""The sync runner without servers: shops side by side, a shop's commands one after another,
jobs of a dead worker taken over, but only once Kafka is connected."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from contracts.messages import SyncCommand
from ingestor.sync.runner import SyncRunner
from runtime.sync_jobs import Document, SyncJobs


@dataclass
class Jobs:
    docs: dict[str, Document] = field(default_factory=dict)

    async def claim(self, job_id: str, owner: str, stale_before: datetime) -> bool:
        doc = self.docs.setdefault(job_id, {"_id": job_id})
        if doc.get("owner") not in (None, owner) and doc["heartbeat_at"] >= stale_before:
            return False
        doc.update(owner=owner, heartbeat_at=datetime.now(UTC))
        return True

    async def heartbeat(self, owner: str, job_ids: list[str]) -> None:
        return None

    async def orphans(self, stale_before: datetime, limit: int = 50) -> list[Document]:
        return [d for d in self.docs.values() if d["heartbeat_at"] < stale_before]


@dataclass
class Recorder:
    running: set[str] = field(default_factory=set)
    overlaps: list[set[str]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    async def __call__(self, command: SyncCommand) -> Any:
        self.running.add(command.shop_id)
        self.overlaps.append(set(self.running))
        self.order.append(str(command.command_id))
        await asyncio.sleep(0.05)
        self.running.discard(command.shop_id)


def runner(jobs: Jobs, run: Recorder, ready: list[bool] | None = None) -> SyncRunner:
    flag = ready if ready is not None else [True]
    return SyncRunner(cast(SyncJobs, jobs), run, concurrency=4, stale_s=1.0,
                      ready=lambda: flag[0])


async def settle(sync: SyncRunner, run: Recorder, count: int) -> None:
    for _ in range(200):
        if len(run.order) >= count and not run.running:
            return
        await asyncio.sleep(0.01)


async def test_shops_sync_side_by_side_and_a_shops_commands_in_order() -> None:
    run = Recorder()
    sync = runner(Jobs(), run)
    a1, a2 = SyncCommand(shop_id="a"), SyncCommand(shop_id="a")
    b1 = SyncCommand(shop_id="b")
    for command in (a1, a2, b1):
        assert await sync.take(command)
    await settle(sync, run, 3)
    assert any(running == {"a", "b"} for running in run.overlaps)
    assert run.order.index(str(a1.command_id)) < run.order.index(str(a2.command_id))
    assert all(len(running & {"a"}) <= 1 for running in run.overlaps)


async def test_a_job_held_by_a_live_worker_is_not_taken() -> None:
    jobs = Jobs()
    command = SyncCommand(shop_id="a")
    jobs.docs[str(command.command_id)] = {"_id": str(command.command_id), "shop_id": "a",
                                          "owner": "other", "heartbeat_at": datetime.now(UTC)}
    assert not await runner(jobs, Recorder()).take(command)


async def test_a_dead_workers_job_is_taken_over_once_kafka_is_connected() -> None:
    jobs, run, ready = Jobs(), Recorder(), [False]
    command = SyncCommand(shop_id="a")
    jobs.docs[str(command.command_id)] = {
        "_id": str(command.command_id), "shop_id": "a", "owner": "dead",
        "heartbeat_at": datetime.now(UTC) - timedelta(minutes=5), "created_at": datetime.now(UTC)}
    sync = runner(jobs, run, ready)
    sync.start()
    try:
        await asyncio.sleep(1.3)  # a recovery round while Kafka is down
        assert run.order == []
        ready[0] = True
        await asyncio.sleep(1.3)
        await settle(sync, run, 1)
    finally:
        await sync.stop()
    assert run.order == [str(command.command_id)]
    assert jobs.docs[str(command.command_id)]["owner"] == sync.owner
