"""MongoDB adapter of the `shops` collection (contracts.shops): the ingestor's side, which
alone encrypts and decrypts tokens. Every write of a token pair is conditional on the
`token_version` it replaces, so two renewals can never overwrite each other."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from contracts.shops import SHOPS_COLLECTION, SHOPS_INDEXES, ShopSource, ShopStatus
from ingestor.settings import Settings, ShopConfig
from ingestor.shops.crypto import TokenCipher
from ingestor.shops.tokens import AuthorizedShop, TokenGrant
from runtime.indexes import ensure_indexes

Document = dict[str, Any]
REFRESH_AT = (0.4, 0.6)  # share of the access token's life after which it is renewed (jitter)


def utcnow() -> datetime:
    return datetime.now(UTC)


def refresh_due(grant: TokenGrant, rng: random.Random) -> int:
    """When to renew: at about half the access token's life (40-60 %), so replicas and shops
    connected together spread their refreshes."""
    life = max(0, grant.access_expires_at - grant.issued_at)
    return grant.issued_at + int(life * rng.uniform(*REFRESH_AT))


@dataclass(frozen=True)
class ShopRecord:
    shop_id: str
    api_version: str
    cipher: str | None
    status: str
    source: str
    status_reason: str | None
    token_version: int
    access_expires_at: int | None
    refresh_due_at: int | None
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)


class ShopRepository:
    def __init__(self, client: AsyncMongoClient[Document], database: str,
                 cipher: TokenCipher, rng: random.Random | None = None) -> None:
        self.shops: AsyncCollection[Document] = client[database][SHOPS_COLLECTION]
        self._cipher = cipher
        self._rng = rng or random.Random()

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.shops, SHOPS_INDEXES)

    def _record(self, doc: Document) -> ShopRecord:
        def secret(name: str) -> str | None:
            value = doc.get(name)
            return self._cipher.decrypt(value) if isinstance(value, str) else None

        return ShopRecord(
            shop_id=str(doc["_id"]), api_version=str(doc.get("api_version") or "202309"),
            cipher=doc.get("cipher"), status=str(doc.get("status")),
            source=str(doc.get("source") or ShopSource.OAUTH.value),
            status_reason=doc.get("status_reason"), token_version=int(doc.get("token_version")
                                                                      or 0),
            access_expires_at=doc.get("access_expires_at"),
            refresh_due_at=doc.get("refresh_due_at"),
            access_token=secret("access_token_enc"), refresh_token=secret("refresh_token_enc"),
        )

    async def get(self, shop_id: str) -> ShopRecord | None:
        doc = await self.shops.find_one({"_id": shop_id})
        return self._record(doc) if doc is not None else None

    def _token_fields(self, grant: TokenGrant) -> Document:
        now = utcnow()
        return {
            "access_token_enc": self._cipher.encrypt(grant.access_token),
            "refresh_token_enc": self._cipher.encrypt(grant.refresh_token),
            "access_expires_at": grant.access_expires_at,
            "refresh_expires_at": grant.refresh_expires_at,
            "refresh_due_at": refresh_due(grant, self._rng),
            "status": ShopStatus.CONNECTED.value,
            "status_reason": None,
            "last_refresh_at": now,
            "updated_at": now,
        }

    async def store_authorized(self, shops: list[AuthorizedShop], grant: TokenGrant) -> None:
        """The shops of a fresh authorization, connected with its tokens (202309 API)."""
        for shop in shops:
            await self.shops.update_one(
                {"_id": shop.shop_id},
                {"$set": {
                    **self._token_fields(grant), "name": shop.name, "region": shop.region,
                    "cipher": shop.cipher, "api_version": "202309",
                    "source": ShopSource.OAUTH.value, "granted_scopes": list(grant.granted_scopes),
                    "seller_name": grant.seller_name, "open_id": grant.open_id,
                    "connected_at": utcnow()},
                 "$inc": {"token_version": 1}, "$unset": {"refresh_lease": ""}},
                upsert=True,
            )

    async def seed_from_env(self, shop: ShopConfig, token: str | None) -> None:
        """A TIKTOK_SHOPS entry as a development shop; a shop the seller connected is left
        alone, and a disconnected one stays disconnected."""
        existing = await self.shops.find_one({"_id": shop.shop_id}, {"source": 1})
        if existing is not None and existing.get("source") == ShopSource.OAUTH.value:
            return
        fields: Document = {"api_version": shop.api_version, "cipher": shop.shop_cipher,
                            "source": ShopSource.ENV.value, "updated_at": utcnow(),
                            "access_token_enc": self._cipher.encrypt(token) if token else None}
        await self.shops.update_one(
            {"_id": shop.shop_id},
            {"$set": fields, "$setOnInsert": {"status": ShopStatus.CONNECTED.value,
                                              "name": f"Shop {shop.shop_id}", "token_version": 1,
                                              "connected_at": utcnow()}},
            upsert=True,
        )

    async def save_renewed(self, shop_id: str, grant: TokenGrant, replaces: int) -> bool:
        """Store renewed tokens unless another renewal stored some since version `replaces`."""
        result = await self.shops.update_one(
            {"_id": shop_id, "token_version": replaces},
            {"$set": self._token_fields(grant), "$inc": {"token_version": 1}},
        )
        return result.matched_count == 1

    async def needs_reauthorization(self, shop_id: str, reason: str, replaces: int) -> bool:
        result = await self.shops.update_one(
            {"_id": shop_id, "token_version": replaces},
            {"$set": {"status": ShopStatus.NEEDS_REAUTHORIZATION.value, "status_reason": reason,
                      "updated_at": utcnow()}},
        )
        return result.matched_count == 1

    async def connected(self) -> list[str]:
        cursor = self.shops.find({"status": ShopStatus.CONNECTED.value}, {"_id": 1})
        return sorted([str(doc["_id"]) async for doc in cursor])

    async def due_for_refresh(self, now: int) -> list[str]:
        cursor = self.shops.find({"status": ShopStatus.CONNECTED.value,
                                  "source": ShopSource.OAUTH.value}, {"refresh_due_at": 1})
        return [str(doc["_id"]) async for doc in cursor
                if int(doc.get("refresh_due_at") or 0) <= now]

    async def take_refresh_lease(self, shop_id: str, ttl_s: float) -> str | None:
        """The shop's refresh lease (one renewal at a time across replicas), or None."""
        now = utcnow()
        token = uuid.uuid4().hex
        taken = await self.shops.find_one_and_update(
            {"_id": shop_id,
             "$or": [{"refresh_lease": {"$exists": False}},
                     {"refresh_lease.expires_at": {"$lt": now}}]},
            {"$set": {"refresh_lease": {"token": token,
                                        "expires_at": now + timedelta(seconds=ttl_s)}}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is None or taken.get("refresh_lease", {}).get("token") != token:
            return None
        return token

    async def release_refresh_lease(self, shop_id: str, token: str) -> None:
        await self.shops.update_one({"_id": shop_id, "refresh_lease.token": token},
                                    {"$unset": {"refresh_lease": ""}})

    async def rotate_keys(self) -> int:
        """Re-encrypt every stored token under the first key of SHOP_TOKEN_KEYS."""
        rotated = 0
        async for doc in self.shops.find({}, {"access_token_enc": 1, "refresh_token_enc": 1}):
            update = {name: self._cipher.rotate(doc[name])
                      for name in ("access_token_enc", "refresh_token_enc")
                      if isinstance(doc.get(name), str)}
            if update:
                await self.shops.update_one({"_id": doc["_id"]}, {"$set": update})
                rotated += 1
        return rotated


def repository(settings: Settings, client: AsyncMongoClient[Document]) -> ShopRepository:
    return ShopRepository(client, settings.mongodb_database,
                          TokenCipher(settings.shop_token_keys.get_secret_value()))
