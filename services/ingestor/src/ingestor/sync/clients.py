"""One TikTok Shop API client per configured shop, built from the settings on first use."""

from __future__ import annotations

import contextlib

import httpx

from ingestor.settings import Settings
from ingestor.sync.job import SyncFailed
from ingestor.tiktok_client import TikTokClientConfig, TikTokShopClient


class ClientPool:
    """One TikTok client per configured shop, shared by syncs and webhook enrichment (so one
    rate limit applies to both)."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._transport = transport  # tests: an in-process simulator
        self._clients: dict[str, TikTokShopClient] = {}

    def problem(self, shop_id: str) -> str | None:
        """Why this shop cannot be synced, or None."""
        try:
            self._config(shop_id)
        except SyncFailed as exc:
            return str(exc)
        return None

    def get(self, shop_id: str) -> TikTokShopClient:
        client = self._clients.get(shop_id)
        if client is None:
            client = TikTokShopClient(self._config(shop_id), transport=self._transport)
            self._clients[shop_id] = client
        return client

    def _config(self, shop_id: str) -> TikTokClientConfig:
        s = self._settings
        if not s.tiktok_api_base_url:
            raise SyncFailed("no TikTok API configured (TIKTOK_API_BASE_URL is empty)")
        shop = s.shop(shop_id)
        if shop is None:
            raise SyncFailed(f"shop {shop_id} is not configured (not in TIKTOK_SHOPS)")
        token = s.access_token_for(shop)
        if token is None:
            raise SyncFailed(f"shop {shop_id} has no access token (no access_token in "
                             "TIKTOK_SHOPS and TIKTOK_ACCESS_TOKEN is not set)")
        return TikTokClientConfig(
            base_url=s.tiktok_api_base_url,
            app_key=s.tiktok_app_key,
            app_secret=s.tiktok_app_secret.get_secret_value(),
            access_token=token,
            shop_id=shop.shop_id,
            api_version=shop.api_version,
            shop_cipher=shop.shop_cipher,
            requests_per_second=s.tiktok_requests_per_second,
        )

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
