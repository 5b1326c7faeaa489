"""TikTok's reject reasons for a return, cached per shop, reverse type, status and locale.

TikTok's credentials stay with the ingestor: on a miss the query API asks it
(`GET {INGESTOR_URL}/internal/v1/reject-reasons`, with INTERNAL_API_TOKEN), then keeps the
answer in `reject_reasons` (`_id` = shop|type|status|locale) for REJECT_REASONS_CACHE_SECONDS.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import httpx
from fastapi import HTTPException
from pymongo.asynchronous.collection import AsyncCollection

from contracts.decisions import DEFAULT_LOCALE, RejectReason
from contracts.statuses import ReturnStatus, ReverseType
from query_api.settings import Settings

Document = dict[str, Any]
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")
INGESTOR_TIMEOUT_S = 15.0


def locale_of(accept_language: str | None) -> str:
    """The first language of an Accept-Language header that is a plain tag ("de-DE;q=0.9"
    gives de-DE); en-US when there is none."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip()
        if _LOCALE.match(tag):
            return tag
    return DEFAULT_LOCALE


def cache_key(shop_id: str, reverse_type: ReverseType, status: ReturnStatus, locale: str) -> str:
    return "|".join((shop_id, reverse_type.value, status.value, locale))


class RejectReasons:
    def __init__(self, cache: AsyncCollection[Document], settings: Settings) -> None:
        self._cache = cache
        self._settings = settings
        self._http = httpx.AsyncClient(base_url=settings.ingestor_url, timeout=INGESTOR_TIMEOUT_S)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, shop_id: str, return_id: str, reverse_type: ReverseType,
                  status: ReturnStatus, locale: str) -> tuple[list[RejectReason], bool]:
        """The reasons, and whether they came from the cache."""
        key = cache_key(shop_id, reverse_type, status, locale)
        now = datetime.now(UTC)
        cached = await self._cache.find_one({"_id": key})
        expires = cached.get("expires_at") if cached else None
        if cached is not None and isinstance(expires, datetime) and (
                expires if expires.tzinfo else expires.replace(tzinfo=UTC)) > now:
            return [RejectReason.model_validate(r) for r in cached["reasons"]], True
        reasons = await self._fetch(shop_id, return_id, locale)
        ttl = timedelta(seconds=self._settings.reject_reasons_cache_seconds)
        await self._cache.replace_one(
            {"_id": key},
            {"reasons": [r.model_dump() for r in reasons], "fetched_at": now,
             "expires_at": now + ttl, "shop_id": shop_id},
            upsert=True)
        return reasons, False

    async def _fetch(self, shop_id: str, return_id: str, locale: str) -> list[RejectReason]:
        token = self._settings.internal_api_token
        if token is None:
            raise HTTPException(503, "reject reasons are not available: INTERNAL_API_TOKEN is "
                                "not set")
        try:
            response = await self._http.get(
                "/internal/v1/reject-reasons",
                params={"shop_id": shop_id, "return_id": return_id, "locale": locale},
                headers={"Authorization": f"Bearer {token.get_secret_value()}"})
        except httpx.HTTPError as exc:
            raise HTTPException(503, f"the ingestor does not answer: {type(exc).__name__}"
                                ) from exc
        if response.status_code != HTTPStatus.OK:
            detail = response.json().get("detail") if response.headers.get(
                "content-type", "").startswith("application/json") else response.text[:200]
            raise HTTPException(502, f"reject reasons unavailable: {detail}")
        return [RejectReason.model_validate(r) for r in response.json()]
