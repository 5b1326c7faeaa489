"""The shop's sync lease renewed while a sync runs, without servers."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from ingestor.sync.lease import with_heartbeat
from runtime.sync_jobs import Lease


class SlowRenewals:
    """A lease store whose renewal takes a while: what it did, in order."""

    def __init__(self) -> None:
        self.steps: list[str] = []

    async def renew_lease(self, lease: Lease, ttl_s: float) -> bool:
        self.steps.append("renew sent")
        await asyncio.sleep(0.2)
        self.steps.append("renew written")
        return True


async def test_a_lease_renewal_under_way_when_the_sync_ends_is_written_before_its_last_write(
) -> None:
    store = SlowRenewals()
    lease = Lease("shop", "token", "command")
    # Renewals every 10 ms; the work ends while the first one is under way.
    await with_heartbeat(cast(Any, store), lease, 0.03, asyncio.sleep(0.05))
    store.steps.append("succeed")
    assert store.steps == ["renew sent", "renew written", "succeed"]
