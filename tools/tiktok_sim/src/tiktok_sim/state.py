"""The simulator's state: its store, lifecycle driver, statistics and the faults switched on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tiktok_sim.driver import LifecycleDriver, Shares, WebhookSender
from tiktok_sim.protocol import ApiVersion
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import SimStats, SimStore

log = logging.getLogger(__name__)


class Faults(BaseModel):
    """Runtime fault injection. `POST /_sim/faults` changes only the fields it names."""

    model_config = ConfigDict(extra="forbid")

    http_429_every: int = Field(default=0, ge=0, description="every Nth search gets HTTP 429")
    retry_after_s: float | None = Field(default=1.0, ge=0, description="Retry-After on 429s")
    rate_limit_code_every: int = Field(default=0, ge=0, description="every Nth: code 36009004")
    http_500_once: bool = Field(default=False, description="the next search gets HTTP 500")
    http_500_every: int = Field(default=0, ge=0)
    delay_ms: int = Field(default=0, ge=0, description="added latency of every search")
    expire_token: bool = Field(default=False, description="refuse tokens as expired")
    update_while_paging: int = Field(
        default=0, ge=0, description="returns of the shop advanced (no webhook) before each "
        "search page it serves: updates made while a sync pages through them")
    duplicate_share: float = Field(default=0.0, ge=0, le=1)
    out_of_order_share: float = Field(default=0.0, ge=0, le=1)
    invalid_share: float = Field(default=0.0, ge=0, le=1)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop_id: str = Field(min_length=1, max_length=64)
    count: int = Field(default=100, ge=0, le=200_000)
    api_version: ApiVersion = "202309"


class AdvanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=10, ge=0, le=100_000)
    shop_id: str | None = None
    send_webhooks: bool = True


@dataclass
class SimState:
    settings: SimSettings
    store: SimStore
    driver: LifecycleDriver
    stats: SimStats
    faults: Faults
    clock: Callable[[], float]
    sender: WebhookSender | None = None
    searches: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply_shares(self) -> None:
        self.driver.shares = Shares(
            duplicate=self.faults.duplicate_share,
            out_of_order=self.faults.out_of_order_share,
            invalid=self.faults.invalid_share,
        )

    async def advance(self, count: int, shop_id: str | None, send: bool) -> dict[str, Any]:
        async with self.lock:  # one driver step at a time: webhooks leave in plan order
            transitions = self.driver.advance(count, shop_id)
            self.stats.transitions += len(transitions)
            planned = self.driver.webhooks_for(transitions)
            for t in transitions:
                log.info("return %s/%s: %s -> %s at %s", t.shop_id, t.return_id,
                         t.from_status.value, t.to_status.value, t.update_time)
            delivered = 0
            if send and self.sender is not None:
                delivered = await self.sender.send(planned)
        return {
            "transitions": [
                {"shop_id": t.shop_id, "return_id": t.return_id, "from": t.from_status.value,
                 "to": t.to_status.value, "update_time": t.update_time}
                for t in transitions
            ],
            "webhooks_planned": len(planned),
            "webhooks_delivered": delivered,
        }


