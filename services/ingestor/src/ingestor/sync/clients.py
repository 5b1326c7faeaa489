"""Where a sync gets the TikTok client of a shop: `ShopClients`, in production the connected
shops' directory (`ingestor.shops.directory.ShopDirectory`: generation, cipher and a renewing
access token from the `shops` collection, TIKTOK_SHOPS seeded into it)."""

from __future__ import annotations

from typing import Protocol

from ingestor.tiktok_client import TikTokShopClient


class ShopClients(Protocol):
    async def problem(self, shop_id: str) -> str | None:
        """Why this shop cannot be synced now, or None."""
        ...

    async def client(self, shop_id: str) -> TikTokShopClient:
        """The shop's client, shared by syncs and enrichment (one rate limit)."""
        ...

    async def aclose(self) -> None: ...
