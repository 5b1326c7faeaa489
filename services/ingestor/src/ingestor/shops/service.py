"""The shops of one ingestor process, wired: repository, token renewal, background refresher,
the clients' directory and the authorization callback. A `Background` of `create_app`: at
start it re-encrypts stored tokens under the first key and seeds TIKTOK_SHOPS (in the
background, retried while MongoDB is down), then starts the refresher."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import httpx
import structlog
from fastapi import APIRouter
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from ingestor.settings import Settings
from ingestor.shops.directory import READY_WAIT_S, ShopDirectory
from ingestor.shops.oauth import oauth_router
from ingestor.shops.refresher import TokenRefresher
from ingestor.shops.renewal import TokenRenewer
from ingestor.shops.repository import Document, ShopRepository, repository
from ingestor.shops.tokens import TikTokAuthClient
from runtime.retry import Stopped, until_done
from runtime.tasks import cancel_and_wait

log = structlog.get_logger("ingestor.shops")


@dataclass
class Shops:
    settings: Settings
    mongo: AsyncMongoClient[Document]
    transport: httpx.AsyncBaseTransport | None = None
    repo: ShopRepository = field(init=False)
    auth: TikTokAuthClient = field(init=False)
    renewer: TokenRenewer = field(init=False)
    refresher: TokenRefresher = field(init=False)
    directory: ShopDirectory = field(init=False)
    ready: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _setup: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.repo = repository(s, self.mongo)
        self.auth = TikTokAuthClient(s.tiktok_auth_base_url, s.tiktok_api_base_url,
                                     s.tiktok_app_key, s.tiktok_app_secret.get_secret_value(),
                                     transport=self.transport)
        self.renewer = TokenRenewer(self.repo, self.auth, s.token_refresh_lease_seconds)
        self.refresher = TokenRefresher(self.renewer, s.token_refresh_check_seconds)
        self.directory = ShopDirectory(s, self.repo, self.renewer, self.transport, self.ready)

    def router(self) -> APIRouter:
        return oauth_router(self.settings, self.repo, self.auth)

    async def _prepare(self) -> None:
        await self.repo.ensure_indexes()
        rotated = await self.repo.rotate_keys()
        for shop in self.settings.tiktok_shops:
            await self.repo.seed_from_env(shop, self.settings.access_token_for(shop))
        log.info("shops_ready", seeded=len(self.settings.tiktok_shops), reencrypted=rotated)

    async def _setup_then_refresh(self) -> None:
        try:
            await until_done("shops setup", self._prepare, retry_on=PyMongoError,
                             stop=self._stop)
        except Stopped:
            return
        self.ready.set()
        if self.settings.token_refresher:
            self.refresher.start()

    async def wait_ready(self) -> None:
        """Until TIKTOK_SHOPS is seeded (bounded: a sync then reports what it finds)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), READY_WAIT_S)

    async def start(self) -> None:
        self._setup = asyncio.create_task(self._setup_then_refresh())

    async def stop(self) -> None:
        self._stop.set()
        if self._setup is not None:
            await cancel_and_wait(self._setup)
        await self.refresher.stop()

    async def close(self) -> None:
        await self.directory.aclose()
        await self.auth.aclose()
