"""The end of TikTok's authorization redirect, served by the ingestor (which alone holds the
app secret and the token key): `GET /oauth/tiktok/callback?code=..&state=..`.

It checks `state` (signed by the query API, `runtime.oauth_state`), exchanges the code for
tokens, reads the shops the tokens may act for (with their ciphers) and stores them connected
(202309 API). Then it sends the seller back to the dashboard's Shops page (SHOPS_PAGE_URL), or
answers JSON without one. Errors say what went wrong, never a token or the code.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pymongo.errors import PyMongoError

from ingestor.settings import Settings
from ingestor.shops.repository import ShopRepository
from ingestor.shops.tokens import TikTokAuthClient
from ingestor.tiktok_client import TikTokApiError
from runtime.oauth_state import InvalidState, verify_state

CALLBACK_PATH = "/oauth/tiktok/callback"

log = structlog.get_logger("ingestor.shops")


def oauth_router(settings: Settings, repo: ShopRepository, auth: TikTokAuthClient) -> APIRouter:
    router = APIRouter(tags=["shops"])
    secret = settings.oauth_state_secret.get_secret_value()

    def back(result: dict[str, str], status: int) -> Response:
        if settings.shops_page_url:
            separator = "&" if "?" in settings.shops_page_url else "?"
            return RedirectResponse(f"{settings.shops_page_url}{separator}{urlencode(result)}",
                                    status_code=303)
        return JSONResponse(result, status_code=status)

    @router.get(CALLBACK_PATH, response_model=None, summary="TikTok's authorization redirect")
    async def callback(code: str | None = None, state: str | None = None) -> Response:
        try:
            verify_state(secret, state or "", max_age_s=settings.oauth_state_max_age_seconds)
        except InvalidState as exc:
            log.warning("oauth_state_refused", reason=str(exc))
            return JSONResponse({"detail": f"authorization refused: {exc}"}, status_code=400)
        if not code:
            return back({"error": "TikTok sent no authorization code (was it declined?)"}, 400)
        try:
            grant = await auth.exchange_code(code)
            shops = await auth.authorized_shops(grant.access_token)
            await repo.store_authorized(shops, grant)
        except TikTokApiError as exc:
            log.warning("oauth_exchange_failed", reason=exc.reason, code=exc.code)
            return back({"error": f"TikTok refused the authorization: {exc.reason}"}, 502)
        except PyMongoError as exc:
            log.warning("oauth_store_failed", error=str(exc))
            return back({"error": "the database is not reachable; connect again"}, 503)
        shop_ids = [shop.shop_id for shop in shops]
        log.info("shops_connected", shop_ids=shop_ids, seller=grant.seller_name,
                 access_expires_at=grant.access_expires_at)
        if not shop_ids:
            return back({"error": "the authorization covers no shop"}, 409)
        return back({"connected": ",".join(shop_ids)}, 200)

    return router
