"""What the query API asks the ingestor, which alone holds TikTok's credentials: a request's
reject reasons (`GET /internal/v1/reject-reasons`). The query API caches them.

Served on the ingestor's port beside the webhook, so it takes a bearer token of its own
(INTERNAL_API_TOKEN, compared in constant time); without one configured the routes answer 404.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query

from contracts.decisions import DEFAULT_LOCALE, RejectReason
from ingestor.settings import Settings
from ingestor.sync.clients import ShopClients
from ingestor.tiktok_client import TikTokApiError
from ingestor.tiktok_decisions import reject_reasons

LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$"
ID = Query(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


def internal_router(settings: Settings, clients: ShopClients) -> APIRouter:
    expected = settings.internal_api_token

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        if expected is None:
            raise HTTPException(404, "internal API not configured (INTERNAL_API_TOKEN)")
        presented = (authorization or "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(presented, expected.get_secret_value().encode()):
            raise HTTPException(401, "unknown internal token")

    router = APIRouter(prefix="/internal/v1", include_in_schema=False,
                       dependencies=[Depends(authorised)])

    @router.get("/reject-reasons")
    async def get_reject_reasons(
        shop_id: Annotated[str, ID],
        return_id: Annotated[str, ID],
        locale: Annotated[str, Query(pattern=LOCALE_PATTERN)] = DEFAULT_LOCALE,
    ) -> list[RejectReason]:
        problem = await clients.problem(shop_id)
        if problem is not None:
            raise HTTPException(404, problem)
        try:
            return await reject_reasons(await clients.client(shop_id), return_id, locale)
        except TikTokApiError as exc:
            raise HTTPException(502, f"TikTok refused: {exc.message or exc.reason}") from exc

    return router
