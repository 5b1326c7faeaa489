"""TikTok's authorization API: exchange a code for tokens, refresh them, read the shops a token
may act for (DOMAIN.md, "Authorization and tokens").

Transient failures (transport, HTTP 5xx or 429) are retried a few times and then raised as
retryable; any other refusal (code != 0) is final: for a refresh it means the seller must
authorize the app again. Tokens, codes and the app secret are never put in errors or logs
(httpx's request lines are redacted by `tiktok_client`'s filter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ingestor.tiktok_http import TikTokApiError, install_redaction, parse_response
from ingestor.tiktok_signing import sign_request

TOKEN_GET_PATH = "/api/v2/token/get"
TOKEN_REFRESH_PATH = "/api/v2/token/refresh"
AUTHORIZED_SHOPS_PATH = "/authorization/202309/shops"
DURATION_LIMIT = 10**9  # DOMAIN.md: an *_expire_in below this is seconds from now
ATTEMPTS = 4


def expiry(value: Any, now: float) -> int:
    """An `*_expire_in` as a unix time, whichever form TikTok sent (duration or unix time)."""
    seconds = int(value)
    return int(now) + seconds if seconds < DURATION_LIMIT else seconds


@dataclass(frozen=True)
class TokenGrant:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: int
    refresh_expires_at: int
    issued_at: int
    open_id: str = ""
    seller_name: str = ""
    region: str = ""
    granted_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthorizedShop:
    shop_id: str
    name: str
    region: str
    cipher: str
    code: str = ""
    seller_type: str = ""


def _grant(data: dict[str, Any], now: float) -> TokenGrant:
    try:
        scopes = data.get("granted_scopes") or []
        return TokenGrant(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            access_expires_at=expiry(data["access_token_expire_in"], now),
            refresh_expires_at=expiry(data["refresh_token_expire_in"], now),
            issued_at=int(now),
            open_id=str(data.get("open_id") or ""),
            seller_name=str(data.get("seller_name") or ""),
            region=str(data.get("seller_base_region") or ""),
            granted_scopes=tuple(str(s) for s in scopes) if isinstance(scopes, list) else (),
        )
    except (KeyError, TypeError, ValueError):
        raise TikTokApiError(0, "token answer lacks tokens or expiries", False) from None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TikTokApiError) and exc.retryable


class TikTokAuthClient:
    def __init__(self, auth_base_url: str, api_base_url: str, app_key: str, app_secret: str,
                 *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 15.0) -> None:
        self._auth_base = auth_base_url.rstrip("/")
        self._api_base = api_base_url.rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        install_redaction()
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def exchange_code(self, code: str) -> TokenGrant:
        data = await self._token(TOKEN_GET_PATH, {"auth_code": code,
                                                  "grant_type": "authorized_code"})
        return _grant(data, time.time())

    async def refresh(self, refresh_token: str) -> TokenGrant:
        data = await self._token(TOKEN_REFRESH_PATH, {"refresh_token": refresh_token,
                                                      "grant_type": "refresh_token"})
        return _grant(data, time.time())

    async def authorized_shops(self, access_token: str) -> list[AuthorizedShop]:
        query = {"app_key": self._app_key, "timestamp": str(int(time.time()))}
        query["sign"] = sign_request(self._app_secret, AUTHORIZED_SHOPS_PATH, query, None)
        data = await self._get(f"{self._api_base}{AUTHORIZED_SHOPS_PATH}", AUTHORIZED_SHOPS_PATH,
                               query, {"x-tts-access-token": access_token,
                                       "content-type": "application/json"})
        shops = data.get("shops") or []
        if not isinstance(shops, list):
            raise TikTokApiError(0, "data.shops is not a list", False, path=AUTHORIZED_SHOPS_PATH)
        return [
            AuthorizedShop(shop_id=str(s["id"]), name=str(s.get("name") or ""),
                           region=str(s.get("region") or ""), cipher=str(s["cipher"]),
                           code=str(s.get("code") or ""),
                           seller_type=str(s.get("seller_type") or ""))
            for s in shops if isinstance(s, dict) and s.get("id") and s.get("cipher")
        ]

    async def _token(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        query = {"app_key": self._app_key, "app_secret": self._app_secret, **params}
        return await self._get(f"{self._auth_base}{path}", path, query, {})

    async def _get(self, url: str, path: str, query: dict[str, str],
                   headers: dict[str, str]) -> dict[str, Any]:
        async for attempt in AsyncRetrying(stop=stop_after_attempt(ATTEMPTS),
                                           wait=wait_exponential_jitter(multiplier=0.3, max=5),
                                           retry=retry_if_exception(_retryable), reraise=True):
            with attempt:
                try:
                    response = await self._http.get(url, params=query, headers=headers)
                except httpx.TransportError as exc:
                    raise TikTokApiError(None, f"{type(exc).__name__}: transport failure", True,
                                         path=path) from None
                return parse_response(response, path)
        raise AssertionError("unreachable")  # pragma: no cover
