"""The checks every TikTok-side endpoint of the simulator makes, as TikTok makes them: injected
faults first, then app key, timestamp freshness, signature and access token; a refusal is an
HTTP 200 with TikTok's non-zero `code`."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from tiktok_sim.auth import SimAuth
from tiktok_sim.protocol import (
    ERR_ACCESS_TOKEN_EXPIRED,
    ERR_INVALID_APP_KEY,
    ERR_INVALID_PARAMS,
    ERR_INVALID_SIGNATURE,
    ERR_RATE_LIMITED,
    ERR_TIMESTAMP_EXPIRED,
    ERR_WRONG_API_VERSION,
    ApiVersion,
    request_signature,
    response,
)
from tiktok_sim.state import SimState

log = logging.getLogger(__name__)

HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


class Refusal(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def int_param(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(ERR_INVALID_PARAMS, f"{key} must be an integer")
    return value


def list_param(body: dict[str, Any], key: str) -> list[Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise Refusal(ERR_INVALID_PARAMS, f"{key} must be a list")
    return value



class Gate:
    """The checks, over the simulator's state and its token registry."""

    def __init__(self, state: SimState, auth: SimAuth) -> None:
        self.state = state
        self.auth = auth
        self.settings = state.settings
        self.stats = state.stats
        self.faults = state.faults
        self.store = state.store
        self.clock: Callable[[], float] = state.clock

    def refuse(self, endpoint: str, code: int, detail: str = "") -> JSONResponse:
        self.stats.refusals[str(code)] += 1
        body = response(code, request_id=f"sim-{self.state.searches}")
        if detail:
            body["message"] = f"{body['message']}: {detail}"
        log.info("refused %s: code %s %s", endpoint, code, detail)
        return JSONResponse(body)


    async def injected_fault(self, endpoint: str) -> JSONResponse | None:
        self.state.searches += 1
        n = self.state.searches
        if self.faults.delay_ms:
            await asyncio.sleep(self.faults.delay_ms / 1000)
        faults = self.faults
        if faults.http_500_once or (faults.http_500_every and n % faults.http_500_every == 0):
            self.faults.http_500_once = False
            self.stats.refusals["http_500"] += 1
            return JSONResponse({"code": 1, "message": "Internal error"},
                                status_code=HTTP_SERVER_ERROR)
        if self.faults.http_429_every and n % self.faults.http_429_every == 0:
            self.stats.refusals["http_429"] += 1
            headers = {}
            if self.faults.retry_after_s is not None:
                headers["Retry-After"] = f"{self.faults.retry_after_s:g}"
            return JSONResponse({"code": ERR_RATE_LIMITED, "message": "Too many requests"},
                                status_code=HTTP_TOO_MANY_REQUESTS, headers=headers)
        if self.faults.rate_limit_code_every and n % self.faults.rate_limit_code_every == 0:
            return self.refuse(endpoint, ERR_RATE_LIMITED)
        return None


    def check_auth(self, request: Request, path: str, body: bytes | None,
                   token: str | None) -> None:
        query = dict(request.query_params)
        if query.get("app_key") != self.settings.app_key:
            raise Refusal(ERR_INVALID_APP_KEY)
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit():
            raise Refusal(ERR_INVALID_PARAMS, "timestamp missing")
        if abs(int(timestamp) - self.clock()) > self.settings.timestamp_tolerance_s:
            raise Refusal(ERR_TIMESTAMP_EXPIRED)
        expected = request_signature(self.settings.app_secret, path, query, body)
        if not hmac.compare_digest(expected, query.get("sign", "")):
            raise Refusal(ERR_INVALID_SIGNATURE)
        token_error = self.auth.access_error(token)
        if token_error is not None:
            raise Refusal(token_error)
        if self.faults.expire_token:
            raise Refusal(ERR_ACCESS_TOKEN_EXPIRED)


    def served_shop(self, shop_id: str, version: ApiVersion) -> None:
        known = self.store.shop_version(shop_id)
        if known is not None and known != version:
            raise Refusal(ERR_WRONG_API_VERSION)


    def updated_while_paging(self, shop_id: str) -> None:
        if self.faults.update_while_paging:
            moved = self.state.driver.advance(self.faults.update_while_paging, shop_id)
            self.stats.transitions += len(moved)
            self.stats.updated_while_paging += len(moved)


    async def signed(self, request: Request, path: str, body: bytes | None,
                     token: str | None) -> JSONResponse | None:
        try:
            self.check_auth(request, path, body, token)
        except Refusal as refusal:
            return self.refuse("authorized_shops", refusal.code, refusal.detail)
        return None


    @staticmethod
    def json_body(raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise Refusal(ERR_INVALID_PARAMS, "body is not JSON") from None
        if not isinstance(body, dict):
            raise Refusal(ERR_INVALID_PARAMS, "body is not an object")
        return body

