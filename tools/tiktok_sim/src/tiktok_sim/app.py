"""The simulator's HTTP app: both returns search endpoints, admin endpoints under /_sim.

Every search request is checked like TikTok checks it (app_key, timestamp freshness, signature,
access token) and refused with HTTP 200 and a non-zero `code`. Faults (throttling, server errors,
delays, an expired token) are switched at runtime through `POST /_sim/faults`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tiktok_sim.auth import SimAuth, auth_router
from tiktok_sim.codes import (
    STATUS_OF_LEGACY_CODE,
    STATUS_OF_V202309_NAME,
    TYPE_OF_LEGACY_CODE,
    TYPE_OF_V202309_NAME,
)
from tiktok_sim.decisions import Guards, decisions_router
from tiktok_sim.driver import LifecycleDriver, Shares, WebhookSender
from tiktok_sim.protocol import (
    ERR_ACCESS_TOKEN_EXPIRED,
    ERR_INVALID_APP_KEY,
    ERR_INVALID_PARAMS,
    ERR_INVALID_SHOP_CIPHER,
    ERR_INVALID_SIGNATURE,
    ERR_RATE_LIMITED,
    ERR_TIMESTAMP_EXPIRED,
    ERR_WRONG_API_VERSION,
    LEGACY_PAGE_SIZE_MAX,
    LEGACY_SEARCH_PATH,
    OK,
    V202309_PAGE_SIZE_MAX,
    V202309_SEARCH_PATH,
    ApiVersion,
    request_signature,
    response,
    shop_cipher_for,
    shop_id_for_cipher,
)
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import SimReturn, SimStats, SimStore, generate_returns, legacy_record
from tiktok_sim.store import v202309_record as render_202309

log = logging.getLogger(__name__)


class Faults(BaseModel):
    """Runtime fault injection. `POST /_sim/faults` changes only the fields it names."""

    model_config = ConfigDict(extra="forbid")

    http_429_every: int = Field(default=0, ge=0, description="every Nth search gets HTTP 429")
    retry_after_s: float | None = Field(default=1.0, ge=0, description="Retry-After on 429s")
    rate_limit_code_every: int = Field(default=0, ge=0, description="every Nth: code 36009004")
    http_500_once: bool = Field(default=False, description="the next search gets HTTP 500")
    http_500_every: int = Field(default=0, ge=0)
    delay_ms: int = Field(default=0, ge=0, description="added latency of every search")
    expire_token: bool = Field(default=False, description="refuse tokens as expired")
    update_while_paging: int = Field(
        default=0, ge=0, description="returns of the shop advanced (no webhook) before each "
        "search page it serves: updates made while a sync pages through them")
    duplicate_share: float = Field(default=0.0, ge=0, le=1)
    out_of_order_share: float = Field(default=0.0, ge=0, le=1)
    invalid_share: float = Field(default=0.0, ge=0, le=1)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shop_id: str = Field(min_length=1, max_length=64)
    count: int = Field(default=100, ge=0, le=200_000)
    api_version: ApiVersion = "202309"


class AdvanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=10, ge=0, le=100_000)
    shop_id: str | None = None
    send_webhooks: bool = True


@dataclass
class SimState:
    settings: SimSettings
    store: SimStore
    driver: LifecycleDriver
    stats: SimStats
    faults: Faults
    clock: Callable[[], float]
    sender: WebhookSender | None = None
    searches: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply_shares(self) -> None:
        self.driver.shares = Shares(
            duplicate=self.faults.duplicate_share,
            out_of_order=self.faults.out_of_order_share,
            invalid=self.faults.invalid_share,
        )

    async def advance(self, count: int, shop_id: str | None, send: bool) -> dict[str, Any]:
        async with self.lock:  # one driver step at a time: webhooks leave in plan order
            transitions = self.driver.advance(count, shop_id)
            self.stats.transitions += len(transitions)
            planned = self.driver.webhooks_for(transitions)
            for t in transitions:
                log.info("return %s/%s: %s -> %s at %s", t.shop_id, t.return_id,
                         t.from_status.value, t.to_status.value, t.update_time)
            delivered = 0
            if send and self.sender is not None:
                delivered = await self.sender.send(planned)
        return {
            "transitions": [
                {"shop_id": t.shop_id, "return_id": t.return_id, "from": t.from_status.value,
                 "to": t.to_status.value, "update_time": t.update_time}
                for t in transitions
            ],
            "webhooks_planned": len(planned),
            "webhooks_delivered": delivered,
        }


class _Refusal(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _int_param(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Refusal(ERR_INVALID_PARAMS, f"{key} must be an integer")
    return value


def _list_param(body: dict[str, Any], key: str) -> list[Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _Refusal(ERR_INVALID_PARAMS, f"{key} must be a list")
    return value


def _encode_token(ret: SimReturn) -> str:
    raw = json.dumps([ret.update_time, ret.seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        update_time, seq = json.loads(raw)
        if not isinstance(update_time, int) or not isinstance(seq, int):
            raise ValueError
    except (ValueError, binascii.Error, TypeError):
        raise _Refusal(ERR_INVALID_PARAMS, "invalid page_token") from None
    return update_time, seq


def create_app(
    config: SimSettings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    settings = config or SimSettings()
    store = SimStore()
    rng = random.Random(settings.seed)
    stats = SimStats()
    faults = Faults(
        duplicate_share=settings.duplicate_share,
        out_of_order_share=settings.out_of_order_share,
        invalid_share=settings.invalid_share,
    )
    state = SimState(settings, store, LifecycleDriver(store, rng, clock), stats, faults, clock)
    state.apply_shares()
    if settings.webhook_url:
        state.sender = WebhookSender(
            settings.webhook_url, settings.app_key, settings.app_secret, stats,
            rate=settings.webhook_rate, transport=webhook_transport,
        )
    for seed in settings.shop_seeds():
        generate_returns(store, rng, seed.shop_id, seed.count, seed.api_version,
                         now=int(clock()))

    async def drive_forever() -> None:
        while True:
            await asyncio.sleep(settings.tick_seconds)
            try:
                await state.advance(settings.advance_per_tick, None, send=True)
            except Exception:  # keep driving whatever one tick met
                log.exception("lifecycle tick failed")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(drive_forever()) if settings.drive else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if state.sender is not None:
                await state.sender.aclose()

    app = FastAPI(title="TikTok Shop simulator", lifespan=lifespan)
    app.state.sim = state
    auth = SimAuth(settings, store, clock)
    app.state.sim_auth = auth

    # ------------------------------------------------------------------------------ guards

    def refuse(endpoint: str, code: int, detail: str = "") -> JSONResponse:
        stats.refusals[str(code)] += 1
        body = response(code, request_id=f"sim-{state.searches}")
        if detail:
            body["message"] = f"{body['message']}: {detail}"
        log.info("refused %s: code %s %s", endpoint, code, detail)
        return JSONResponse(body)

    async def injected_fault(endpoint: str) -> JSONResponse | None:
        state.searches += 1
        n = state.searches
        if faults.delay_ms:
            await asyncio.sleep(faults.delay_ms / 1000)
        if faults.http_500_once or (faults.http_500_every and n % faults.http_500_every == 0):
            faults.http_500_once = False
            stats.refusals["http_500"] += 1
            return JSONResponse({"code": 1, "message": "Internal error"}, status_code=500)
        if faults.http_429_every and n % faults.http_429_every == 0:
            stats.refusals["http_429"] += 1
            headers = {}
            if faults.retry_after_s is not None:
                headers["Retry-After"] = f"{faults.retry_after_s:g}"
            return JSONResponse({"code": ERR_RATE_LIMITED, "message": "Too many requests"},
                                status_code=429, headers=headers)
        if faults.rate_limit_code_every and n % faults.rate_limit_code_every == 0:
            return refuse(endpoint, ERR_RATE_LIMITED)
        return None

    def check_auth(request: Request, path: str, body: bytes | None, token: str | None) -> None:
        query = dict(request.query_params)
        if query.get("app_key") != settings.app_key:
            raise _Refusal(ERR_INVALID_APP_KEY)
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit():
            raise _Refusal(ERR_INVALID_PARAMS, "timestamp missing")
        if abs(int(timestamp) - clock()) > settings.timestamp_tolerance_s:
            raise _Refusal(ERR_TIMESTAMP_EXPIRED)
        expected = request_signature(settings.app_secret, path, query, body)
        if not hmac.compare_digest(expected, query.get("sign", "")):
            raise _Refusal(ERR_INVALID_SIGNATURE)
        token_error = auth.access_error(token)
        if token_error is not None:
            raise _Refusal(token_error)
        if faults.expire_token:
            raise _Refusal(ERR_ACCESS_TOKEN_EXPIRED)

    def json_body(raw: bytes) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise _Refusal(ERR_INVALID_PARAMS, "body is not JSON") from None
        if not isinstance(body, dict):
            raise _Refusal(ERR_INVALID_PARAMS, "body is not an object")
        return body

    def served_shop(shop_id: str, version: ApiVersion) -> None:
        known = store.shop_version(shop_id)
        if known is not None and known != version:
            raise _Refusal(ERR_WRONG_API_VERSION)

    def updated_while_paging(shop_id: str) -> None:
        if faults.update_while_paging:
            moved = state.driver.advance(faults.update_while_paging, shop_id)
            stats.transitions += len(moved)
            stats.updated_while_paging += len(moved)

    async def signed(request: Request, path: str, body: bytes | None,
                     token: str | None) -> JSONResponse | None:
        try:
            check_auth(request, path, body, token)
        except _Refusal as refusal:
            return refuse("authorized_shops", refusal.code, refusal.detail)
        return None

    app.include_router(auth_router(auth, signed))  # authorization page, tokens, shops

    # ------------------------------------------------------------------------------ legacy

    @app.post(LEGACY_SEARCH_PATH)
    async def legacy_search(request: Request) -> JSONResponse:
        endpoint = "legacy_search"
        stats.requests[endpoint] += 1
        fault = await injected_fault(endpoint)
        if fault is not None:
            return fault
        raw = await request.body()
        try:
            # The legacy API signs no body and takes the token as a query parameter.
            check_auth(request, LEGACY_SEARCH_PATH, None, request.query_params.get("access_token"))
            shop_id = request.query_params.get("shop_id") or ""
            if not shop_id:
                raise _Refusal(ERR_INVALID_PARAMS, "shop_id missing")
            served_shop(shop_id, "legacy")
            data = legacy_page(shop_id, json_body(raw))
        except _Refusal as refusal:
            return refuse(endpoint, refusal.code, refusal.detail)
        stats.records_served += len(data["reverse_list"])
        return JSONResponse(response(OK, data, request_id=f"sim-{state.searches}"))

    def legacy_page(shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        offset = _int_param(body, "offset") or 0
        size = _int_param(body, "size") or 10
        updated_while_paging(shop_id)
        if offset < 0 or not 1 <= size <= LEGACY_PAGE_SIZE_MAX:
            raise _Refusal(ERR_INVALID_PARAMS, f"size must be 1..{LEGACY_PAGE_SIZE_MAX}")
        time_from = _int_param(body, "update_time_from")
        time_to = _int_param(body, "update_time_to")
        status = _int_param(body, "reverse_order_status")
        reverse_type = _int_param(body, "reverse_type")
        if status is not None and status not in STATUS_OF_LEGACY_CODE:
            raise _Refusal(ERR_INVALID_PARAMS, "reverse_order_status unknown")
        if reverse_type is not None and reverse_type not in TYPE_OF_LEGACY_CODE:
            raise _Refusal(ERR_INVALID_PARAMS, "reverse_type unknown")
        return_id = body.get("reverse_order_id")
        order_id = body.get("order_id")
        matching = [
            r for r in store.ordered(shop_id)
            if (time_from is None or r.update_time >= time_from)
            and (time_to is None or r.update_time <= time_to)  # both bounds inclusive
            and (return_id is None or r.return_id == str(return_id))
            and (order_id is None or r.order_id == str(order_id))
            and (status is None or r.status == STATUS_OF_LEGACY_CODE[status])
            and (reverse_type is None or r.reverse_type == TYPE_OF_LEGACY_CODE[reverse_type])
        ]
        if body.get("sort_type") == 1:
            matching.reverse()
        page = matching[offset:offset + size]
        return {
            "reverse_list": [legacy_record(r) for r in page],
            "more": offset + size < len(matching),
        }

    # ------------------------------------------------------------------------------ 202309

    @app.post(V202309_SEARCH_PATH)
    async def v202309_search(request: Request) -> JSONResponse:
        endpoint = "202309_search"
        stats.requests[endpoint] += 1
        fault = await injected_fault(endpoint)
        if fault is not None:
            return fault
        raw = await request.body()
        try:
            check_auth(request, V202309_SEARCH_PATH, raw,
                       request.headers.get("x-tts-access-token"))
            shop_id = shop_id_for_cipher(request.query_params.get("shop_cipher", ""))
            if shop_id is None:
                raise _Refusal(ERR_INVALID_SHOP_CIPHER)
            served_shop(shop_id, "202309")
            data = v202309_page(shop_id, dict(request.query_params), json_body(raw))
        except _Refusal as refusal:
            return refuse(endpoint, refusal.code, refusal.detail)
        stats.records_served += len(data["return_orders"])
        return JSONResponse(response(OK, data, request_id=f"sim-{state.searches}"))

    def v202309_page(shop_id: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        size_text = query.get("page_size", "")
        if not size_text.isdigit() or not 1 <= int(size_text) <= V202309_PAGE_SIZE_MAX:
            raise _Refusal(ERR_INVALID_PARAMS, f"page_size must be 1..{V202309_PAGE_SIZE_MAX}")
        size = int(size_text)
        if query.get("sort_field", "update_time") != "update_time":
            raise _Refusal(ERR_INVALID_PARAMS, "the simulator sorts by update_time only")
        descending = query.get("sort_order", "ASC").upper() == "DESC"
        bounds = {k: _int_param(body, k) for k in
                  ("update_time_ge", "update_time_lt", "create_time_ge", "create_time_lt")}
        return_ids = _list_param(body, "return_ids")
        order_ids = _list_param(body, "order_ids")
        types = _list_param(body, "return_types")
        statuses = _list_param(body, "return_status")
        if types is not None and any(t not in TYPE_OF_V202309_NAME for t in types):
            raise _Refusal(ERR_INVALID_PARAMS, "return_types unknown")
        if statuses is not None and any(s not in STATUS_OF_V202309_NAME for s in statuses):
            raise _Refusal(ERR_INVALID_PARAMS, "return_status unknown")
        wanted_ids = None if return_ids is None else {str(i) for i in return_ids}
        wanted_orders = None if order_ids is None else {str(i) for i in order_ids}
        wanted_types = None if types is None else {TYPE_OF_V202309_NAME[t] for t in types}
        wanted_status = None if statuses is None else {STATUS_OF_V202309_NAME[s] for s in statuses}

        def keep(r: SimReturn) -> bool:
            ge, lt = bounds["update_time_ge"], bounds["update_time_lt"]
            cge, clt = bounds["create_time_ge"], bounds["create_time_lt"]
            return (
                (ge is None or r.update_time >= ge) and (lt is None or r.update_time < lt)
                and (cge is None or r.create_time >= cge) and (clt is None or r.create_time < clt)
                and (wanted_ids is None or r.return_id in wanted_ids)
                and (wanted_orders is None or r.order_id in wanted_orders)
                and (wanted_types is None or r.reverse_type in wanted_types)
                and (wanted_status is None or r.status in wanted_status)
            )

        updated_while_paging(shop_id)
        matching = [r for r in store.ordered(shop_id) if keep(r)]
        if descending:
            matching.reverse()
        after = query.get("page_token")
        remaining = matching
        if after:
            # Keyset paging: a return updated while a client pages moves behind the cursor
            # and is seen again, but none is skipped.
            cursor = _decode_token(after)
            remaining = [
                r for r in matching
                if (r.sort_key < cursor if descending else r.sort_key > cursor)
            ]
        page = remaining[:size]
        more = len(remaining) > size
        return {
            "return_orders": [render_202309(r) for r in page],
            "next_page_token": _encode_token(page[-1]) if more else "",
            "total_count": len(matching),
        }

    # ------------------------------------------------------------------------------ admin

    @app.get("/_sim/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "returns": len(store)}

    @app.get("/_sim/faults")
    async def get_faults() -> dict[str, Any]:
        return faults.model_dump()

    @app.post("/_sim/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        try:
            patch = Faults.model_validate(json_body(await request.body()))
        except (_Refusal, ValueError) as exc:
            raise HTTPException(422, str(exc)) from None
        for name in patch.model_fields_set:
            setattr(faults, name, getattr(patch, name))
        state.apply_shares()
        return faults.model_dump()

    @app.delete("/_sim/faults")
    async def reset_faults() -> dict[str, Any]:
        for name, info in Faults.model_fields.items():
            setattr(faults, name, info.default)
        state.apply_shares()
        return faults.model_dump()

    @app.post("/_sim/returns/generate")
    async def generate(req: GenerateRequest) -> dict[str, Any]:
        try:
            created = generate_returns(store, rng, req.shop_id, req.count, req.api_version,
                                       now=int(clock()))
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        return {
            "shop_id": req.shop_id,
            "api_version": req.api_version,
            "shop_cipher": shop_cipher_for(req.shop_id),
            "generated": len(created),
            "total": len(store.returns(req.shop_id)),
        }

    @app.post("/_sim/returns/advance")
    async def advance(req: AdvanceRequest) -> dict[str, Any]:
        return await state.advance(req.count, req.shop_id, req.send_webhooks)

    @app.get("/_sim/shops")
    async def shops() -> list[dict[str, Any]]:
        return [
            {"shop_id": shop_id, "api_version": version, "shop_cipher": shop_cipher_for(shop_id),
             "returns": len(store.returns(shop_id)), "statuses": store.status_counts(shop_id)}
            for shop_id, version in store.shops().items()
        ]

    @app.get("/_sim/returns/{shop_id}/{return_id}")
    async def one_return(shop_id: str, return_id: str) -> dict[str, Any]:
        ret = store.get(shop_id, return_id)
        if ret is None:
            raise HTTPException(404, "no such return")
        render = legacy_record if ret.api_version == "legacy" else render_202309
        return {"api_version": ret.api_version, "record": render(ret),
                "history": [{"status": s.status.value, "update_time": s.update_time,
                             "actor": s.actor} for s in ret.history]}

    @app.get("/_sim/stats")
    async def get_stats() -> dict[str, Any]:
        return {**stats.as_dict(), "returns": len(store), "webhook_target": settings.webhook_url}

    # Seller decisions and reject reasons (tiktok_sim.decisions), checked like the searches.
    app.include_router(decisions_router(state, Guards(check_auth, json_body, injected_fault,
                                                      _Refusal)))
    return app
