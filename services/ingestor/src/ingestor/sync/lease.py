"""The shop's sync lease while a sync runs: taken (waiting a while for another holder to finish),
renewed in the background, released by the sync's last write (`SyncJobs.succeed`) or on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable

import structlog
from pymongo.errors import PyMongoError

from ingestor.sync.job import SyncFailed, until_stored
from runtime.sync_jobs import Lease, SyncJobs
from runtime.tasks import cancel_and_wait

log = structlog.get_logger("ingestor.sync")

LEASE_POLL_S = 1.0


async def acquire_lease(
    store: SyncJobs, shop_id: str, job_id: str, *, ttl_s: float, wait_s: float
) -> Lease:
    """The shop's lease, waiting up to `wait_s` for another holder; SyncFailed after that."""
    deadline = time.monotonic() + wait_s
    waited = False
    while True:
        lease: Lease | None = await until_stored(
            "lease", lambda: store.acquire_lease(shop_id, job_id, ttl_s))
        if lease is not None:
            return lease
        holder = await store.lease_holder(shop_id)
        if time.monotonic() >= deadline:
            raise SyncFailed(f"another sync of shop {shop_id} is running (command {holder})"
                             f"; gave up after {wait_s:g} s")
        if not waited:
            log.info("sync_waiting_for_lease", shop_id=shop_id, command_id=job_id,
                     held_by=holder)
            waited = True
        await asyncio.sleep(LEASE_POLL_S)


async def with_heartbeat(store: SyncJobs, lease: Lease, ttl_s: float,
                         work: Awaitable[None]) -> None:
    """Await `work`, renewing the lease every third of its time to live meanwhile.

    A renewal under way when the work ends is waited for, not cancelled: cancelling stops
    only our wait, and FerretDB, which writes an update back as the whole document it read
    before, would still write the lease back over the sync's last write (`succeed`)."""
    stop = asyncio.Event()

    async def beat() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ttl_s / 3)
            if stop.is_set():
                return
            try:
                if not await store.renew_lease(lease, ttl_s):
                    log.warning("sync_lease_lost", shop_id=lease.shop_id,
                                command_id=lease.command_id)
                    return
            except PyMongoError as exc:
                log.warning("sync_lease_renew_failed", error=str(exc))

    heartbeat = asyncio.create_task(beat())
    try:
        await work
    except asyncio.CancelledError:  # shutting down: nothing of the sync is written after
        await cancel_and_wait(heartbeat)
        raise
    finally:
        if not heartbeat.done():
            stop.set()
            await heartbeat
