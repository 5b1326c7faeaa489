"""The simulator's HTTP app: both returns search endpoints, admin endpoints under /_sim.

Every search request is checked like TikTok checks it (app_key, timestamp freshness, signature,
access token) and refused with HTTP 200 and a non-zero `code`. Faults (throttling, server errors,
delays, an expired token) are switched at runtime through `POST /_sim/faults`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from tiktok_sim import admin, decisions, search
from tiktok_sim import auth as authorization
from tiktok_sim.auth import SimAuth
from tiktok_sim.decisions import DecisionDesk
from tiktok_sim.driver import LifecycleDriver, WebhookSender
from tiktok_sim.guards import Gate
from tiktok_sim.settings import SimSettings
from tiktok_sim.state import AdvanceRequest, Faults, GenerateRequest, SimState
from tiktok_sim.store import SimStats, SimStore, generate_returns

__all__ = ["AdvanceRequest", "Faults", "GenerateRequest", "SimState", "create_app"]

log = logging.getLogger(__name__)


def create_app(
    config: SimSettings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = config or SimSettings()
    store = SimStore()
    rng = random.Random(settings.seed)
    stats = SimStats()
    faults = Faults(
        duplicate_share=settings.duplicate_share,
        out_of_order_share=settings.out_of_order_share,
        invalid_share=settings.invalid_share,
    )
    state = SimState(settings, store, LifecycleDriver(store, rng, clock), stats, faults, clock)
    state.apply_shares()
    if settings.webhook_url:
        state.sender = WebhookSender(
            settings.webhook_url, settings.app_key, settings.app_secret, stats,
            rate=settings.webhook_rate, transport=webhook_transport,
        )
    for seed in settings.shop_seeds():
        generate_returns(store, rng, seed.shop_id, seed.count, seed.api_version,
                         now=int(clock()))

    async def drive_forever() -> None:
        while True:
            await asyncio.sleep(settings.tick_seconds)
            try:
                await state.advance(settings.advance_per_tick, None, send=True)
            except Exception:  # keep driving whatever one tick met
                log.exception("lifecycle tick failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(drive_forever()) if settings.drive else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if state.sender is not None:
                await state.sender.aclose()

    app = FastAPI(title="TikTok Shop simulator", lifespan=lifespan)
    app.state.sim = state
    auth = SimAuth(settings, store, clock)
    app.state.sim_auth = auth

    gate = Gate(state, auth)
    app.state.gate = gate  # read by the search routes
    app.include_router(authorization.router)  # authorization page, tokens, shops
    app.include_router(search.router)  # both returns searches
    app.include_router(admin.router)  # /_sim
    app.state.decision_desk = DecisionDesk(state)
    app.include_router(decisions.router)  # seller decisions and reject reasons
    return app
