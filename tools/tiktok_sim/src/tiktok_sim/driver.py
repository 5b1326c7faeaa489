"""The lifecycle driver: moves returns along valid transitions and plans the webhooks TikTok
would push, with configurable shares of duplicates, out-of-order deliveries and invalid moves."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

import httpx

from contracts.statuses import ReturnStatus
from contracts.transitions import shortest_path
from tiktok_sim.protocol import renderable_statuses, webhook_signature
from tiktok_sim.store import (
    ACTOR_OF_STATUS,
    SimReturn,
    SimStats,
    SimStore,
    Step,
    legacy_webhook,
    new_tracking_number,
    v202309_webhook,
    valid_next,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transition:
    shop_id: str
    return_id: str
    from_status: ReturnStatus
    to_status: ReturnStatus
    update_time: int
    actor: str


@dataclass
class Shares:
    """Probabilities (0..1) applied to each webhook."""

    duplicate: float = 0.0  # delivered twice
    out_of_order: float = 0.0  # held back and delivered after the next one
    invalid: float = 0.0  # followed by a webhook claiming a move the return cannot make


WebhookKind = Literal["transition", "duplicate", "invalid"]


@dataclass(frozen=True)
class PlannedWebhook:
    shop_id: str
    return_id: str
    status: ReturnStatus
    update_time: int
    kind: WebhookKind
    body: bytes
    delayed: bool = False  # delivered after a later webhook


class LifecycleDriver:
    def __init__(
        self,
        store: SimStore,
        rng: random.Random,
        clock: Callable[[], float] = time.time,
        shares: Shares | None = None,
    ) -> None:
        self.store = store
        self.rng = rng
        self.clock = clock
        self.shares = shares or Shares()
        self._held: PlannedWebhook | None = None
        self._announced: set[tuple[str, str]] = set()  # returns a webhook was sent for
        self._notifications = 0

    # ---------------------------------------------------------------------------- transitions

    def advance(self, count: int, shop_id: str | None = None) -> list[Transition]:
        """Move up to `count` random non-terminal returns one valid step each."""
        movable = [
            r for r in self.store.returns(shop_id)
            if valid_next(r.status, r.reverse_type, r.api_version)
        ]
        chosen = self.rng.sample(movable, min(count, len(movable)))
        return [t for t in map(self.advance_return, chosen) if t is not None]

    def advance_return(self, ret: SimReturn) -> Transition | None:
        """Move one return one valid step; None when it is terminal."""
        before = ret.status
        options = valid_next(before, ret.reverse_type, ret.api_version)
        if not options:
            return None
        nxt = self.rng.choice(options)
        when = max(int(self.clock()), ret.update_time + 1)
        actor = ACTOR_OF_STATUS[nxt]
        ret.history.append(Step(nxt, when, actor))
        if nxt == ReturnStatus.AFTERSALE_BUYER_SHIPPED and ret.tracking_number is None:
            ret.tracking_number = new_tracking_number(self.rng)
        return Transition(ret.shop_id, ret.return_id, before, nxt, when, actor)

    # ---------------------------------------------------------------------------- webhooks

    def _render(self, ret: SimReturn, step: Step, kind: WebhookKind) -> PlannedWebhook:
        now = int(self.clock())
        if ret.api_version == "legacy":
            payload = legacy_webhook(ret, step, now)
        else:
            self._notifications += 1
            notification_id = f"73{self._notifications:017d}"
            payload = v202309_webhook(ret, step, now, notification_id)
        body = json.dumps(payload, separators=(",", ":")).encode()
        return PlannedWebhook(ret.shop_id, ret.return_id, step.status, step.update_time, kind, body)

    def _invalid_status(self, ret: SimReturn, before: ReturnStatus) -> ReturnStatus | None:
        """A status unreachable both from where the return was and from where it is now, so the
        claim is invalid whether or not its real move has been delivered yet."""
        candidates = [
            s for s in sorted(renderable_statuses(ret.api_version))
            if s not in (before, ret.status)
            and shortest_path(before, s, ret.reverse_type) is None
            and shortest_path(ret.status, s, ret.reverse_type) is None
        ]
        return self.rng.choice(candidates) if candidates else None

    def webhooks_for(self, transitions: list[Transition]) -> list[PlannedWebhook]:
        """The deliveries TikTok would make for these transitions, in delivery order."""
        out: list[PlannedWebhook] = []
        for t in transitions:
            ret = self.store.get(t.shop_id, t.return_id)
            if ret is None:
                continue
            key = (t.shop_id, t.return_id)
            known_before = key in self._announced
            main = self._render(ret, Step(t.to_status, t.update_time, t.actor), "transition")
            batch = [main]
            if self.rng.random() < self.shares.duplicate:
                batch.append(PlannedWebhook(main.shop_id, main.return_id, main.status,
                                            main.update_time, "duplicate", main.body))
            # An invalid claim only shows as invalid to a receiver that knows the return.
            if known_before and self.rng.random() < self.shares.invalid:
                bogus = self._invalid_status(ret, t.from_status)
                if bogus is not None:
                    step = Step(bogus, t.update_time + 1, ACTOR_OF_STATUS[bogus])
                    batch.append(self._render(ret, step, "invalid"))
            self._announced.add(key)
            if self._held is None and self.rng.random() < self.shares.out_of_order:
                held, *rest = batch
                self._held = PlannedWebhook(held.shop_id, held.return_id, held.status,
                                            held.update_time, held.kind, held.body, delayed=True)
                out.extend(rest)
                continue
            out.extend(batch)
            if self._held is not None:
                out.append(self._held)
                self._held = None
        return out

    def flush_held(self) -> list[PlannedWebhook]:
        held, self._held = self._held, None
        return [held] if held is not None else []


class WebhookSender:
    """Delivers planned webhooks, signed, paced at `rate` per second, retrying non-200s."""

    def __init__(
        self,
        url: str,
        app_key: str,
        app_secret: str,
        stats: SimStats,
        *,
        rate: float = 20.0,
        attempts: int = 3,
        retry_delay_s: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._app_key = app_key
        self._app_secret = app_secret
        self._stats = stats
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._attempts = attempts
        self._retry_delay_s = retry_delay_s
        self._http = httpx.AsyncClient(timeout=10.0, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, webhooks: list[PlannedWebhook]) -> int:
        """Deliver in order; returns how many were accepted (HTTP 200)."""
        delivered = 0
        for hook in webhooks:
            if await self._deliver(hook):
                delivered += 1
            if self._interval:
                await asyncio.sleep(self._interval)
        return delivered

    async def _deliver(self, hook: PlannedWebhook) -> bool:
        headers = {
            "content-type": "application/json",
            "Authorization": webhook_signature(self._app_key, self._app_secret, hook.body),
        }
        problem = ""
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._http.post(self.url, content=hook.body, headers=headers)
            except httpx.TransportError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code == HTTPStatus.OK:
                    self._stats.webhooks["sent"] += 1
                    self._stats.webhooks[hook.kind] += 1
                    if hook.delayed:
                        self._stats.webhooks["out_of_order"] += 1
                    return True
                problem = f"HTTP {response.status_code}"
            if attempt < self._attempts:
                await asyncio.sleep(self._retry_delay_s * attempt)
        self._stats.webhooks["failed"] += 1
        log.warning("webhook for return %s/%s not delivered after %s attempts: %s",
                    hook.shop_id, hook.return_id, self._attempts, problem)
        return False
