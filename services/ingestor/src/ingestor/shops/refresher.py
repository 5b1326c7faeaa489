"""The background refresher: renews every connected shop's access token well before it expires
(at about half its life, with jitter: `repository.refresh_due`). Every replica runs one; the
shop's refresh lease makes one of them renew a given token, the others find it renewed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import structlog
from pymongo.errors import PyMongoError

from ingestor.shops.renewal import ShopUnavailable, TokenRenewer
from ingestor.tiktok_client import TikTokApiError
from runtime.tasks import cancel_and_wait

log = structlog.get_logger("ingestor.shops")


@dataclass
class TokenRefresher:
    renewer: TokenRenewer
    check_seconds: float
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def renew_due(self) -> int:
        """Renew every token due now; the number renewed."""
        renewed = 0
        for shop_id in await self.renewer.repo.due_for_refresh(int(time.time())):
            try:
                await self.renewer.renew(shop_id)
                renewed += 1
            except (ShopUnavailable, TikTokApiError) as exc:  # recorded on the shop, or retried
                log.warning("token_renewal_skipped", shop_id=shop_id, error=str(exc))
        return renewed

    async def _forever(self) -> None:
        while True:
            try:
                await self.renew_due()
            except PyMongoError as exc:
                log.warning("token_refresher_store_failed", error=str(exc))
            except Exception:  # never let the refresher die
                log.exception("token_refresher_failed")
            await asyncio.sleep(self.check_seconds)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
