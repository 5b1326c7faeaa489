"""The TikTok client of each shop, from the `shops` collection: a connected shop's API
generation, cipher and (renewing) access token. One client per shop, shared by syncs and
webhook enrichment (so one rate limit applies to both)."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from ingestor.settings import Settings
from ingestor.shops.renewal import ShopCredentials, TokenRenewer, unavailable_reason
from ingestor.shops.repository import ShopRepository
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient

NO_API = "no TikTok API configured (TIKTOK_API_BASE_URL is empty)"
READY_WAIT_S = 30.0  # at start, for TIKTOK_SHOPS to be seeded


class ShopDirectory:
    def __init__(self, settings: Settings, repo: ShopRepository, renewer: TokenRenewer,
                 transport: httpx.AsyncBaseTransport | None = None,
                 ready: asyncio.Event | None = None) -> None:
        self._settings = settings
        self._ready = ready  # set once TIKTOK_SHOPS is seeded
        self._repo = repo
        self._renewer = renewer
        self._transport = transport
        self._clients: dict[tuple[str, str, str | None], TikTokShopClient] = {}

    async def problem(self, shop_id: str) -> str | None:
        """Why this shop cannot be called now, or None."""
        if not self._settings.tiktok_api_base_url:
            return NO_API
        if self._ready is not None and not self._ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), READY_WAIT_S)
        return unavailable_reason(shop_id, await self._repo.get(shop_id))

    async def client(self, shop_id: str) -> TikTokShopClient:
        """The shop's client (call `problem` first: a shop that cannot be called raises)."""
        record = await self._repo.get(shop_id)
        reason = (unavailable_reason(shop_id, record) if self._settings.tiktok_api_base_url
                  else NO_API)
        if reason is not None or record is None:
            raise LookupError(reason)
        key = (shop_id, record.api_version, record.cipher)
        found = self._clients.get(key)
        if found is not None:
            return found
        s = self._settings
        config = TikTokClientConfig(
            base_url=s.tiktok_api_base_url, app_key=s.tiktok_app_key,
            app_secret=s.tiktok_app_secret.get_secret_value(), access_token="",
            shop_id=shop_id, api_version="legacy" if record.api_version == "legacy" else "202309",
            shop_cipher=record.cipher, requests_per_second=s.tiktok_requests_per_second,
        )
        client = TikTokShopClient(config, transport=self._transport,
                                  credentials=ShopCredentials(shop_id, self._repo, self._renewer))
        self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
