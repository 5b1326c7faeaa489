"""Shops: which TikTok shops are connected, and connecting more.

- `GET /api/v1/shops`: the shops the token may read (all for "*"), with their status,
  token expiry and last sync. Read through `contracts.shops.SHOP_PUBLIC_FIELDS`: the query API
  never reads a token (it holds no key to decrypt one either).
- `GET /api/v1/shops/connect` (tokens granted "*"): 307 to TikTok's authorization page with a
  signed, expiring `state`; `?redirect=false` answers `{"authorize_url"}` instead (the
  dashboard's Connect button). TikTok sends the seller on to the ingestor's callback.
- `POST /api/v1/shops/{shop_id}/disconnect`: stops using the shop (its tokens are deleted).
- `GET /shops`: the dashboard's Shops page.

Registered by `query_api.api` with `app.include_router(shops_router(settings))`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from pymongo.asynchronous.collection import AsyncCollection

from contracts.read_model import SYNC_CHECKPOINTS_COLLECTION
from contracts.shops import (
    SHOP_PUBLIC_FIELDS,
    SHOP_SECRET_FIELDS,
    SHOPS_COLLECTION,
    ShopStatus,
)
from query_api.auth import Caller
from query_api.models import ErrorMessage, ValidationFailure
from query_api.openapi import CALLER_ERRORS
from query_api.routes.dashboard import PAGE_HEADERS, STATIC_DIR
from query_api.settings import Settings
from runtime.oauth_state import sign_state

log = structlog.get_logger("query_api.shops")

Document = dict[str, Any]
# The caller's errors, and a parameter the route refuses (the message names it).
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    **CALLER_ERRORS,
    422: {"model": ValidationFailure, "description": "a parameter is invalid"},
}
SHOP_ID = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f/]+$")]


class ShopView(BaseModel):
    shop_id: str
    name: str | None
    region: str | None
    api_version: str | None
    source: str | None = Field(description="oauth: connected by the seller; env: TIKTOK_SHOPS")
    status: ShopStatus
    status_reason: str | None = Field(description="why the shop needs re-authorization")
    access_expires_at: int | None = Field(description="when the access token expires (unix s)")
    refresh_expires_at: int | None = Field(description="when the refresh token expires")
    granted_scopes: list[str]
    seller_name: str | None
    connected_at: datetime | None
    last_refresh_at: datetime | None
    last_sync_at: datetime | None = Field(description="when the last sync succeeded")

    @classmethod
    def from_document(cls, doc: Document, last_sync_at: datetime | None) -> ShopView:
        def when(name: str) -> datetime | None:
            value = doc.get(name)
            if not isinstance(value, datetime):
                return None
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

        def number(name: str) -> int | None:
            value = doc.get(name)
            return int(value) if isinstance(value, int | float) else None

        return cls(
            shop_id=str(doc["_id"]), name=doc.get("name"), region=doc.get("region"),
            api_version=doc.get("api_version"), source=doc.get("source"),
            status=ShopStatus(doc.get("status", ShopStatus.DISCONNECTED.value)),
            status_reason=doc.get("status_reason"),
            access_expires_at=number("access_expires_at"),
            refresh_expires_at=number("refresh_expires_at"),
            granted_scopes=[str(s) for s in doc.get("granted_scopes") or []],
            seller_name=doc.get("seller_name"), connected_at=when("connected_at"),
            last_refresh_at=when("last_refresh_at"), last_sync_at=last_sync_at,
        )


class ConnectUrl(BaseModel):
    authorize_url: str


def shops_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["shops"])
    projection = dict.fromkeys(SHOP_PUBLIC_FIELDS, 1)
    state_secret = settings.oauth_state_secret.get_secret_value()

    def collections(
        request: Request,
    ) -> tuple[AsyncCollection[Document], AsyncCollection[Document]]:
        db = request.app.state.mongo[settings.mongodb_database]
        return db[SHOPS_COLLECTION], db[SYNC_CHECKPOINTS_COLLECTION]

    @router.get("/api/v1/shops", response_model=list[ShopView], responses=AUTH_ERRORS,
                summary="The shops this token may read: status, token expiry, last sync")
    async def list_shops(request: Request, caller: Caller) -> list[ShopView]:
        shops, checkpoints = collections(request)
        query: Document = {} if caller.all_shops else {"_id": {"$in": sorted(caller.shops)}}
        docs = [doc async for doc in shops.find(query, projection).sort("_id", 1)]
        synced: dict[str, datetime | None] = {}
        if docs:
            async for cp in checkpoints.find({"_id": {"$in": [d["_id"] for d in docs]}},
                                             {"last_success_at": 1}):
                value = cp.get("last_success_at")
                if isinstance(value, datetime):
                    synced[str(cp["_id"])] = (value if value.tzinfo is not None
                                              else value.replace(tzinfo=UTC))
        return [ShopView.from_document(d, synced.get(str(d["_id"]))) for d in docs]

    @router.get(
        "/api/v1/shops/connect", response_model=None, status_code=307,
        response_class=RedirectResponse,
        responses={**AUTH_ERRORS,
                   307: {"description": "to TikTok's authorization page (Location)"},
                   200: {"model": ConnectUrl, "description": "with redirect=false"}},
        summary="Connect a shop: go to TikTok's authorization page (tokens granted '*')",
    )
    async def connect(
        caller: Caller,
        redirect: Annotated[bool, Query(description="false: answer the URL as JSON")] = True,
    ) -> Response:
        if not caller.all_shops:
            raise HTTPException(403, "only a token granted every shop ('*') may connect shops")
        separator = "&" if "?" in settings.tiktok_authorize_url else "?"
        url = (f"{settings.tiktok_authorize_url}{separator}"
               f"{urlencode({'state': sign_state(state_secret)})}")
        log.info("shop_connect_started")
        if not redirect:
            return JSONResponse(ConnectUrl(authorize_url=url).model_dump())
        return RedirectResponse(url, status_code=307)

    @router.post(
        "/api/v1/shops/{shop_id}/disconnect", response_model=ShopView,
        responses={**AUTH_ERRORS, 404: {"model": ErrorMessage, "description": "no such shop"}},
        summary="Disconnect a shop: its tokens are deleted and it is no longer synced",
    )
    async def disconnect(request: Request, caller: Caller, shop_id: SHOP_ID) -> ShopView:
        caller.require(shop_id)
        shops, _ = collections(request)
        result = await shops.update_one(
            {"_id": shop_id},
            {"$set": {"status": ShopStatus.DISCONNECTED.value, "status_reason": None,
                      "updated_at": datetime.now(UTC)},
             "$unset": {**dict.fromkeys(SHOP_SECRET_FIELDS, ""), "refresh_lease": ""}},
        )
        if result.matched_count == 0:
            raise HTTPException(404, f"shop {shop_id} not found")
        log.info("shop_disconnected", shop_id=shop_id)
        doc = await shops.find_one({"_id": shop_id}, projection)
        assert doc is not None
        return ShopView.from_document(doc, None)

    @router.get("/shops", include_in_schema=False)
    async def shops_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "shops.html", headers=PAGE_HEADERS)

    return router
