"""SyncService.handle against an in-process simulator, with in-memory job store and bus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts.messages import EventSource, RejectedEvent, ReturnEvent, SyncCommand
from contracts.read_model import FINISHED_JOB_STATUSES as FINISHED
from contracts.read_model import JobStatus
from contracts.statuses import ReturnStatus
from ingestor.kafka import KafkaBus, PublishError
from ingestor.metrics import IngestorMetrics, SyncResult
from ingestor.settings import Settings, ShopConfig
from ingestor.sync import SyncService
from ingestor.sync.reconciler import Reconciler
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient
from runtime.sync_jobs import Checkpoint, Document, Lease
from runtime.sync_jobs import queued_sync_job as queued_job
from tiktok_sim.app import SimState, create_app
from tiktok_sim.protocol import shop_cipher_for
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import generate_returns

SHOP = "7494560109732840000"
LEGACY_SHOP = "7494560109732840001"


@dataclass
class FakeStore:
    jobs: dict[str, Document] = field(default_factory=dict)
    checkpoints: dict[str, Document] = field(default_factory=dict)

    async def ensure_indexes(self) -> None:
        return None

    async def receive(self, command: SyncCommand) -> Document:
        return self.jobs.setdefault(str(command.command_id), queued_job(command))

    async def start(self, job_id: str, since: int, until: int) -> None:
        self.jobs[job_id].update(status="running", since=since, until=until)
        self.jobs[job_id]["attempts"] += 1

    async def progress(self, job_id: str, counts: dict[str, int]) -> None:
        self.jobs[job_id].update(counts)

    async def finish(self, job_id: str, status: JobStatus, counts: dict[str, int],
                     error: str | None, *, window: tuple[int, int] | None = None) -> None:
        self.jobs[job_id].update(counts, status=status.value, error=error)
        if window is not None:
            self.jobs[job_id].update(since=window[0], until=window[1])

    async def checkpoint(self, shop_id: str) -> Checkpoint | None:
        doc = self.checkpoints.get(shop_id)
        if doc is None:
            return None
        return Checkpoint(shop_id, doc.get("synced_until"), doc.get("last_success_at"),
                          doc.get("last_command_id"))

    async def acquire_lease(self, shop_id: str, command_id: str, ttl_s: float) -> Lease | None:
        doc = self.checkpoints.setdefault(shop_id, {})
        lease = doc.get("lease")
        if lease is not None and lease["expires_at"] > datetime.now(UTC):
            return None
        token = uuid.uuid4().hex
        doc["lease"] = {"token": token, "command_id": command_id,
                        "expires_at": datetime.now(UTC) + timedelta(seconds=ttl_s)}
        return Lease(shop_id, token, command_id)

    async def lease_holder(self, shop_id: str) -> str | None:
        lease = self.checkpoints.get(shop_id, {}).get("lease")
        return None if lease is None else str(lease["command_id"])

    async def renew_lease(self, lease: Lease, ttl_s: float) -> bool:
        return self._holds(lease)

    async def release_lease(self, lease: Lease) -> None:
        if self._holds(lease):
            del self.checkpoints[lease.shop_id]["lease"]

    async def succeed(self, lease: Lease, synced_until: int | None) -> bool:
        if not self._holds(lease):
            return False
        doc = self.checkpoints[lease.shop_id]
        del doc["lease"]
        doc.update(last_success_at=datetime.now(UTC), last_command_id=lease.command_id)
        if synced_until is not None:
            doc["synced_until"] = synced_until
        return True

    def _holds(self, lease: Lease) -> bool:
        held = self.checkpoints.get(lease.shop_id, {}).get("lease")
        return held is not None and held["token"] == lease.token


@dataclass
class FakeBus:
    events: list[ReturnEvent] = field(default_factory=list)
    rejections: list[RejectedEvent] = field(default_factory=list)
    batches: int = 0
    fail_after_batches: int | None = None
    commands: list[SyncCommand] = field(default_factory=list)
    connected: bool = True

    async def publish_sync_command(self, command: SyncCommand) -> None:
        if not self.connected:
            raise PublishError("not connected to Kafka")
        self.commands.append(command)

    async def publish_batch(self, events: list[ReturnEvent],
                            rejections: list[RejectedEvent]) -> None:
        if self.fail_after_batches is not None and self.batches >= self.fail_after_batches:
            raise PublishError("Kafka did not acknowledge within 10.0 s")
        self.batches += 1
        self.events.extend(events)
        self.rejections.extend(rejections)


@dataclass
class EnvClients:
    """The shops of TIKTOK_SHOPS with their fixed tokens (the sync's `ShopClients`)."""

    settings: Settings
    transport: httpx.AsyncBaseTransport
    clients: dict[str, TikTokShopClient] = field(default_factory=dict)

    async def problem(self, shop_id: str) -> str | None:
        return None if self.settings.shop(shop_id) else f"shop {shop_id} is not configured"

    async def client(self, shop_id: str) -> TikTokShopClient:
        shop = self.settings.shop(shop_id)
        assert shop is not None
        if shop_id not in self.clients:
            s = self.settings
            self.clients[shop_id] = TikTokShopClient(TikTokClientConfig(
                base_url=s.tiktok_api_base_url, app_key=s.tiktok_app_key,
                app_secret=s.tiktok_app_secret.get_secret_value(),
                access_token=s.access_token_for(shop) or "", shop_id=shop_id,
                api_version=shop.api_version, shop_cipher=shop.shop_cipher,
                requests_per_second=s.tiktok_requests_per_second), transport=self.transport)
        return self.clients[shop_id]

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()


@dataclass
class Harness:
    service: SyncService
    store: FakeStore
    bus: FakeBus
    sim: SimState

    async def run(self, shop_id: str = SHOP, **window: int | None) -> tuple[SyncResult, Document]:
        command = SyncCommand(shop_id=shop_id, requested_by="test", **window)
        result = await self.service.handle(command)
        return result, self.store.jobs[str(command.command_id)]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    sim = SimSettings(seed=7, app_key="unit-app-key", app_secret="unit-app-secret",
                      access_token="unit-access-token")
    app = create_app(sim)
    state: SimState = app.state.sim
    # The simulator may date a return's last steps up to a few seconds after `now`.
    now = int(time.time()) - 10
    generate_returns(state.store, state.driver.rng, SHOP, 230, "202309", now=now)
    generate_returns(state.store, state.driver.rng, LEGACY_SHOP, 120, "legacy", now=now)
    settings = Settings(
        tiktok_app_key=sim.app_key,
        tiktok_app_secret=sim.app_secret,
        tiktok_access_token=sim.access_token,
        tiktok_api_base_url="http://sim",
        tiktok_shops=[
            ShopConfig(shop_id=SHOP, api_version="202309", shop_cipher=shop_cipher_for(SHOP)),
            ShopConfig(shop_id=LEGACY_SHOP, api_version="legacy"),
        ],
        tiktok_requests_per_second=1000,
        sync_lease_wait_seconds=0,
    )
    bus = FakeBus()
    service = SyncService(
        settings, cast(KafkaBus, bus), IngestorMetrics(),
        mongo=AsyncMongoClient("mongodb://127.0.0.1:1/", connect=False),
        clients=EnvClients(settings, httpx.ASGITransport(app=app)),
    )
    store = FakeStore()
    service.store = cast(Any, store)
    try:
        yield Harness(service, store, bus, state)
    finally:
        await service.stop()
        await service.close()


async def test_a_sync_publishes_every_return_and_sets_the_checkpoint(harness: Harness) -> None:
    result, job = await harness.run()
    assert result == SyncResult.SUCCEEDED
    assert job["status"] == "succeeded"
    assert job["error"] is None
    assert (job["pages"], job["returns_seen"], job["events_published"], job["rejected"]) == \
        (5, 230, 230, 0)
    assert {e.return_id for e in harness.bus.events} == \
        {r.return_id for r in harness.sim.store.returns(SHOP)}
    checkpoint = harness.store.checkpoints[SHOP]
    assert checkpoint["synced_until"] == job["until"]
    assert "lease" not in checkpoint


async def test_the_next_sync_resumes_from_the_checkpoint_minus_the_overlap(
    harness: Harness
) -> None:
    _, first = await harness.run()
    _, second = await harness.run()
    assert second["since"] == first["until"] - 300
    recent = [r for r in harness.sim.store.returns(SHOP) if r.update_time >= second["since"]]
    assert second["returns_seen"] == len(recent) < 230


async def test_a_redelivered_finished_command_is_not_run_again(harness: Harness) -> None:
    command = SyncCommand(shop_id=LEGACY_SHOP)
    assert await harness.service.handle(command) == SyncResult.SUCCEEDED
    published = len(harness.bus.events)
    assert published == 120
    assert await harness.service.handle(command) == SyncResult.SKIPPED
    assert len(harness.bus.events) == published
    assert harness.store.jobs[str(command.command_id)]["status"] in FINISHED


async def test_a_job_taken_over_after_its_sync_moved_the_checkpoint_is_not_run_again(
    harness: Harness
) -> None:
    # Its worker wrote the checkpoint (`succeed`), then stopped before the job said so.
    command = SyncCommand(shop_id=LEGACY_SHOP)
    job_id = str(command.command_id)
    assert await harness.service.handle(command) == SyncResult.SUCCEEDED
    published = len(harness.bus.events)
    harness.store.jobs[job_id]["status"] = "running"
    assert await harness.service.handle(command) == SyncResult.SUCCEEDED
    assert len(harness.bus.events) == published
    job = harness.store.jobs[job_id]
    assert job["status"] == "succeeded"
    assert (job["pages"], job["returns_seen"], job["attempts"]) == (2, 120, 1)


async def test_a_job_taken_over_before_its_sync_moved_the_checkpoint_runs_again(
    harness: Harness
) -> None:
    command = SyncCommand(shop_id=LEGACY_SHOP)
    job_id = str(command.command_id)
    harness.store.jobs[job_id] = queued_job(command) | {"status": "running", "attempts": 1}
    assert await harness.service.handle(command) == SyncResult.SUCCEEDED
    assert len(harness.bus.events) == 120
    assert harness.store.jobs[job_id]["attempts"] == 2


async def test_a_refused_token_fails_the_job_and_keeps_the_checkpoint(harness: Harness) -> None:
    await harness.run()
    before = dict(harness.store.checkpoints[SHOP])
    harness.sim.faults.expire_token = True
    result, job = await harness.run()
    assert result == SyncResult.FAILED
    assert "access token expired" in job["error"]
    assert "105002" in job["error"]
    assert harness.store.checkpoints[SHOP] == before


async def test_a_sync_failing_half_way_leaves_the_checkpoint(harness: Harness) -> None:
    harness.bus.fail_after_batches = 2
    result, job = await harness.run()
    assert result == SyncResult.FAILED
    assert "Kafka did not acknowledge" in job["error"]
    assert job["pages"] == 2
    assert job["events_published"] == 100
    assert harness.store.checkpoints[SHOP].get("synced_until") is None
    assert "lease" not in harness.store.checkpoints[SHOP]
    # Run again: everything, from the start.
    harness.bus.fail_after_batches = None
    result, job = await harness.run()
    assert result == SyncResult.SUCCEEDED
    assert job["since"] == 0
    assert job["returns_seen"] == 230


async def test_throttling_is_retried(harness: Harness) -> None:
    harness.sim.faults.http_429_every = 2
    harness.sim.faults.retry_after_s = 0
    result, job = await harness.run()
    assert result == SyncResult.SUCCEEDED
    assert job["returns_seen"] == 230


async def test_a_shop_that_cannot_be_called_fails_with_the_reason(harness: Harness) -> None:
    result, job = await harness.run(shop_id="not-configured")
    assert result == SyncResult.FAILED
    assert job["error"] == "shop not-configured is not configured"
    assert harness.bus.events == []


async def test_a_shop_whose_lease_is_held_elsewhere_is_not_synced_twice(
    harness: Harness
) -> None:
    other = await harness.store.acquire_lease(SHOP, "other-command", 60)
    assert other is not None
    result, job = await harness.run()
    assert result == SyncResult.FAILED
    assert "other-command" in job["error"]
    assert harness.bus.events == []
    assert harness.store.checkpoints[SHOP]["lease"]["token"] == other.token


async def test_since_after_until_fails_the_job(harness: Harness) -> None:
    result, job = await harness.run(since=100, until=50)
    assert result == SyncResult.FAILED
    assert "after" in job["error"]


async def test_an_undecodable_command_goes_to_the_rejected_topic(harness: Harness) -> None:
    await harness.service.on_record(b'{"shop_id": ""}', 2, 17)
    (rejection,) = harness.bus.rejections
    assert rejection.reason.value == "undecodable"
    assert (rejection.source_partition, rejection.source_offset) == (2, 17)


async def test_a_legacy_webhook_is_enriched_in_the_background(harness: Harness) -> None:
    ret = harness.sim.store.returns(LEGACY_SHOP)[0]
    webhook_event = ReturnEvent(
        shop_id=LEGACY_SHOP, return_id=ret.return_id, order_id=ret.order_id,
        status=ret.status, update_time=ret.update_time, source=EventSource.WEBHOOK_LEGACY)
    harness.service.enrich_later(webhook_event)
    for _ in range(100):
        if harness.bus.events:
            break
        await asyncio.sleep(0.02)
    (snapshot,) = harness.bus.events
    assert snapshot.event_id == webhook_event.event_id  # the same change: one history entry
    assert snapshot.source == EventSource.SYNC_LEGACY
    assert snapshot.details.refund is not None
    assert snapshot.details.items


async def test_enrichment_failures_are_counted_not_raised(harness: Harness) -> None:
    harness.sim.faults.expire_token = True
    event = ReturnEvent(shop_id=LEGACY_SHOP, return_id="nope", order_id="o",
                        status=ReturnStatus.AFTERSALE_APPLYING, update_time=1732679990,
                        source=EventSource.WEBHOOK_LEGACY)
    harness.service.enrich_later(event)
    harness.service.enrich_later(event.model_copy(update={"shop_id": "not-configured"}))
    await asyncio.sleep(0.3)
    failed = harness.service.metrics.enrichments.labels(result="failed")._value.get()
    assert failed == 1
    assert harness.bus.events == []


async def test_the_reconciler_asks_for_a_sync_of_every_shop(harness: Harness) -> None:
    harness.bus.connected = False  # not yet: it retries
    harness.service.settings.sync_reconcile_minutes = 0.001  # 60 ms
    await harness.service.start()
    await asyncio.sleep(0.05)
    harness.bus.connected = True
    for _ in range(200):
        if len(harness.bus.commands) >= 4:
            break
        await asyncio.sleep(0.02)
    await harness.service.stop()
    shops = [c.shop_id for c in harness.bus.commands]
    assert shops[:2] == [SHOP, LEGACY_SHOP]
    assert len(shops) >= 4
    assert {c.requested_by for c in harness.bus.commands} == {"reconciler"}


async def test_the_reconciler_asks_for_a_sync_of_every_connected_shop() -> None:
    bus = FakeBus()
    settings = Settings(tiktok_app_key="k", tiktok_app_secret="s", sync_reconcile_minutes=60)

    async def connected() -> list[str]:
        return ["oauth-shop", "env-shop"]

    reconciler = Reconciler(settings, cast(KafkaBus, bus), IngestorMetrics(), connected)
    reconciler.start()
    try:
        for _ in range(100):
            if len(bus.commands) == 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await reconciler.stop()
    assert [c.shop_id for c in bus.commands] == ["oauth-shop", "env-shop"]
    assert {c.requested_by for c in bus.commands} == {"reconciler"}
