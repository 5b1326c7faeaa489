"""TikTok's authorization side, simulated: the seller's authorization page (approving at once),
the token endpoints, the authorized shops, and tokens that expire, refresh and can be revoked.

- `GET /oauth/authorize?state=..[&redirect_uri=..]`: the seller approves at once; 302 to the
  app's redirect URL (SIM_AUTH_REDIRECT_URL, or `redirect_uri`) with `code` and `state`.
- `GET /api/v2/token/get?app_key&app_secret&auth_code&grant_type=authorized_code`
- `GET /api/v2/token/refresh?app_key&app_secret&refresh_token&grant_type=refresh_token`:
  a new access and refresh token; the old refresh token stops working, the old access token
  lasts until it expires.
- `GET /authorization/202309/shops` (signed like every 202309 call): the grant's shops.
- Admin: `POST /_sim/auth/config` (token lives, expiries as durations or unix times),
  `POST /_sim/auth/grant` (which shops the next authorization grants),
  `POST /_sim/auth/revoke` (a shop's refresh tokens, and optionally its access tokens),
  `GET /_sim/auth` (counts; never a token).

The static SIM_ACCESS_TOKEN stays valid for every shop (development shops seeded by env).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from tiktok_sim.protocol import (
    ERR_ACCESS_TOKEN_EXPIRED,
    ERR_INVALID_ACCESS_TOKEN,
    ERR_INVALID_APP_KEY,
    ERR_INVALID_PARAMS,
    OK,
    response,
    shop_cipher_for,
)
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import SimStore

log = logging.getLogger(__name__)

AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_GET_PATH = "/api/v2/token/get"
TOKEN_REFRESH_PATH = "/api/v2/token/refresh"
AUTHORIZED_SHOPS_PATH = "/authorization/202309/shops"
# Refusals of the token endpoints (simulator's choice of codes; HTTP 200, as TikTok answers).
ERR_INVALID_AUTH_CODE = 36004004
ERR_INVALID_REFRESH_TOKEN = 36004005
ERR_INVALID_APP_SECRET = 36004006
CODE_LIFE_S = 600
REGIONS = ("US", "GB", "MY")

# Checks the signature and app of a signed API call; None when fine, else the refusal.
SignedCheck = Callable[[Request, str, bytes | None, str | None], Awaitable[JSONResponse | None]]


@dataclass
class Grant:
    """One authorization of the app by a seller: its shops and its current tokens."""

    shops: tuple[str, ...]
    open_id: str
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires at
    refresh_token: str = ""
    refresh_expires_at: float = 0.0
    revoked: bool = False


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token_life_s: float = Field(default=7 * 86_400, gt=0)
    refresh_token_life_s: float = Field(default=60 * 86_400, gt=0)
    expire_in_as_duration: bool = Field(
        default=False, description="send *_expire_in as seconds from now, not unix times")


class GrantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shops: list[str] = Field(min_length=1)


class RevokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop_id: str
    access_tokens: bool = False


@dataclass
class SimAuth:
    settings: SimSettings
    store: SimStore
    clock: Callable[[], float] = time.time
    config: AuthConfig = field(default_factory=AuthConfig)
    next_shops: tuple[str, ...] = ()
    codes: dict[str, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.config = AuthConfig(access_token_life_s=self.settings.access_token_life_s,
                                 refresh_token_life_s=self.settings.refresh_token_life_s)

    # ------------------------------------------------------------------ used by the search APIs

    def access_error(self, token: str | None) -> int | None:
        """None when `token` may call the API, else the refusal code."""
        if token is None:
            return ERR_INVALID_ACCESS_TOKEN
        if hmac.compare_digest(token, self.settings.access_token):
            return None
        grant = self._grant_of_access(token)
        if grant is None or grant.revoked:
            return ERR_INVALID_ACCESS_TOKEN
        if grant.access_tokens[token] <= self.clock():
            self.counts["expired_calls"] += 1
            return ERR_ACCESS_TOKEN_EXPIRED
        return None

    def _grant_of_access(self, token: str) -> Grant | None:
        return next((g for g in self.grants if token in g.access_tokens), None)

    # ------------------------------------------------------------------ grants and tokens

    def authorize(self) -> str:
        shops = self.next_shops or tuple(
            s for s, version in self.store.shops().items() if version == "202309")
        code = "sim-ac-" + secrets.token_urlsafe(24)
        self.codes[code] = (shops, self.clock() + CODE_LIFE_S)
        self.counts["authorizations"] += 1
        return code

    def _issue(self, grant: Grant) -> dict[str, Any]:
        now = self.clock()
        access = "sim-at-" + secrets.token_urlsafe(24)
        grant.access_tokens[access] = now + self.config.access_token_life_s
        grant.refresh_token = "sim-rt-" + secrets.token_urlsafe(24)
        grant.refresh_expires_at = now + self.config.refresh_token_life_s

        def expiry(at: float) -> int:
            return int(at - now) if self.config.expire_in_as_duration else int(at)

        return {
            "access_token": access,
            "access_token_expire_in": expiry(grant.access_tokens[access]),
            "refresh_token": grant.refresh_token,
            "refresh_token_expire_in": expiry(grant.refresh_expires_at),
            "open_id": grant.open_id,
            "seller_name": f"Sim seller {grant.open_id[-6:]}",
            "seller_base_region": REGIONS[len(grant.shops) % len(REGIONS)],
            "user_type": 0,
            "granted_scopes": ["seller.return_refund.basic", "seller.authorization.info"],
        }

    def exchange(self, code: str) -> dict[str, Any] | int:
        found = self.codes.pop(code, None)
        if found is None or found[1] < self.clock():
            return ERR_INVALID_AUTH_CODE
        grant = Grant(shops=found[0], open_id="sim-open-" + secrets.token_hex(6))
        self.grants.append(grant)
        self.counts["token_get"] += 1
        return self._issue(grant)

    def refresh(self, refresh_token: str) -> dict[str, Any] | int:
        grant = next((g for g in self.grants
                      if g.refresh_token and hmac.compare_digest(g.refresh_token, refresh_token)),
                     None)
        if grant is None or grant.revoked or grant.refresh_expires_at <= self.clock():
            self.counts["refresh_refused"] += 1
            return ERR_INVALID_REFRESH_TOKEN
        self.counts["refreshes"] += 1
        return self._issue(grant)

    def revoke(self, shop_id: str, access_tokens: bool) -> int:
        revoked = 0
        for grant in self.grants:
            if shop_id in grant.shops:
                grant.refresh_token = ""
                if access_tokens:
                    grant.revoked = True
                revoked += 1
        return revoked

    def shops_of(self, token: str) -> list[dict[str, Any]]:
        grant = self._grant_of_access(token)
        shop_ids = grant.shops if grant is not None else tuple(self.store.shops())
        return [
            {"id": shop_id, "name": f"Sim shop {shop_id}", "region": REGIONS[n % len(REGIONS)],
             "code": f"SIM{n:04d}", "cipher": shop_cipher_for(shop_id), "seller_type": "LOCAL"}
            for n, shop_id in enumerate(shop_ids)
        ]

    def summary(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(), "grants": len(self.grants),
                "next_shops": list(self.next_shops), **dict(self.counts)}


router = APIRouter()


def _auth(request: Request) -> SimAuth:
    auth: SimAuth = request.app.state.sim_auth
    return auth


Auth = Annotated[SimAuth, Depends(_auth)]


def _app_error(settings: SimSettings, request: Request, grant_type: str) -> int | None:
    query = request.query_params
    if query.get("app_key") != settings.app_key:
        return ERR_INVALID_APP_KEY
    if not hmac.compare_digest(query.get("app_secret", ""), settings.app_secret):
        return ERR_INVALID_APP_SECRET
    if query.get("grant_type") != grant_type:
        return ERR_INVALID_PARAMS
    return None


def _answer(result: dict[str, Any] | int) -> JSONResponse:
    if isinstance(result, int):
        return JSONResponse(response(result, request_id="sim-auth"))
    return JSONResponse(response(OK, result, request_id="sim-auth"))


def _token(auth: SimAuth, request: Request, grant_type: str, param: str,
           action: Callable[[str], dict[str, Any] | int]) -> JSONResponse:
    refused = _app_error(auth.settings, request, grant_type)
    if refused is not None:
        return _answer(refused)
    return _answer(action(request.query_params.get(param, "")))


@router.get(AUTHORIZE_PATH, response_model=None)
async def authorize(auth: Auth, request: Request) -> RedirectResponse | JSONResponse:
    target = request.query_params.get("redirect_uri") or auth.settings.auth_redirect_url
    state = request.query_params.get("state", "")
    if not target:
        return JSONResponse({"detail": "no redirect URL (SIM_AUTH_REDIRECT_URL)"}, 400)
    code = auth.authorize()
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}{urlencode({'code': code, 'state': state})}",
                            status_code=302)


@router.get(TOKEN_GET_PATH, name=TOKEN_GET_PATH)
async def token_get(auth: Auth, request: Request) -> JSONResponse:
    return _token(auth, request, "authorized_code", "auth_code", auth.exchange)


@router.get(TOKEN_REFRESH_PATH, name=TOKEN_REFRESH_PATH)
async def token_refresh(auth: Auth, request: Request) -> JSONResponse:
    return _token(auth, request, "refresh_token", "refresh_token", auth.refresh)


@router.get(AUTHORIZED_SHOPS_PATH)
async def authorized_shops(auth: Auth, request: Request) -> JSONResponse:
    token = request.headers.get("x-tts-access-token")
    signed: SignedCheck = request.app.state.gate.signed  # checked like every signed call
    refused = await signed(request, AUTHORIZED_SHOPS_PATH, None, token)
    if refused is not None:
        return refused
    return _answer({"shops": auth.shops_of(token or "")})


@router.get("/_sim/auth")
async def summary(auth: Auth) -> dict[str, Any]:
    return auth.summary()


@router.post("/_sim/auth/config")
async def configure(auth: Auth, config: AuthConfig) -> dict[str, Any]:
    auth.config = config
    return auth.summary()


@router.post("/_sim/auth/grant")
async def grant_next(auth: Auth, req: GrantRequest) -> dict[str, Any]:
    for shop_id in req.shops:
        auth.store.register_shop(shop_id, "202309")
    auth.next_shops = tuple(req.shops)
    return auth.summary()


@router.post("/_sim/auth/revoke")
async def revoke(auth: Auth, req: RevokeRequest) -> dict[str, Any]:
    return {"revoked_grants": auth.revoke(req.shop_id, req.access_tokens)}
