"""Both returns search endpoints, legacy (offset pages) and 202309 (keyset page tokens),
filtered and paged like TikTok's, behind the simulator's `Gate`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from tiktok_sim.codes import (
    STATUS_OF_LEGACY_CODE,
    STATUS_OF_V202309_NAME,
    TYPE_OF_LEGACY_CODE,
    TYPE_OF_V202309_NAME,
)
from tiktok_sim.guards import Gate, Refusal, int_param, list_param
from tiktok_sim.protocol import (
    ERR_INVALID_PARAMS,
    ERR_INVALID_SHOP_CIPHER,
    LEGACY_PAGE_SIZE_MAX,
    LEGACY_SEARCH_PATH,
    OK,
    V202309_PAGE_SIZE_MAX,
    V202309_SEARCH_PATH,
    response,
    shop_id_for_cipher,
)
from tiktok_sim.store import SimReturn, legacy_record
from tiktok_sim.store import v202309_record as render_202309


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
        raise Refusal(ERR_INVALID_PARAMS, "invalid page_token") from None
    return update_time, seq



router = APIRouter()


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


async def _serve(request: Request, endpoint: str,
                 page: Callable[[Gate, bytes], dict[str, Any]], records: str) -> JSONResponse:
    """A search as TikTok serves it: injected faults, then the checks, then the page."""
    gate = _gate(request)
    gate.stats.requests[endpoint] += 1
    fault = await gate.injected_fault(endpoint)
    if fault is not None:
        return fault
    raw = await request.body()
    try:
        data = page(gate, raw)
    except Refusal as refusal:
        return gate.refuse(endpoint, refusal.code, refusal.detail)
    gate.stats.records_served += len(data[records])
    return JSONResponse(response(OK, data, request_id=f"sim-{gate.state.searches}"))


@router.post(LEGACY_SEARCH_PATH)
async def legacy_search(request: Request) -> JSONResponse:
    def page(gate: Gate, raw: bytes) -> dict[str, Any]:
        # The legacy API signs no body and takes the token as a query parameter.
        gate.check_auth(request, LEGACY_SEARCH_PATH, None,
                        request.query_params.get("access_token"))
        shop_id = request.query_params.get("shop_id") or ""
        if not shop_id:
            raise Refusal(ERR_INVALID_PARAMS, "shop_id missing")
        gate.served_shop(shop_id, "legacy")
        return legacy_page(gate, shop_id, gate.json_body(raw))

    return await _serve(request, "legacy_search", page, "reverse_list")


def legacy_page(gate: Gate, shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
    offset = int_param(body, "offset") or 0
    size = int_param(body, "size") or 10
    gate.updated_while_paging(shop_id)
    if offset < 0 or not 1 <= size <= LEGACY_PAGE_SIZE_MAX:
        raise Refusal(ERR_INVALID_PARAMS, f"size must be 1..{LEGACY_PAGE_SIZE_MAX}")
    time_from = int_param(body, "update_time_from")
    time_to = int_param(body, "update_time_to")
    status = int_param(body, "reverse_order_status")
    reverse_type = int_param(body, "reverse_type")
    if status is not None and status not in STATUS_OF_LEGACY_CODE:
        raise Refusal(ERR_INVALID_PARAMS, "reverse_order_status unknown")
    if reverse_type is not None and reverse_type not in TYPE_OF_LEGACY_CODE:
        raise Refusal(ERR_INVALID_PARAMS, "reverse_type unknown")
    return_id = body.get("reverse_order_id")
    order_id = body.get("order_id")
    matching = [
        r for r in gate.store.ordered(shop_id)
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


@router.post(V202309_SEARCH_PATH)
async def v202309_search(request: Request) -> JSONResponse:
    def page(gate: Gate, raw: bytes) -> dict[str, Any]:
        gate.check_auth(request, V202309_SEARCH_PATH, raw,
                        request.headers.get("x-tts-access-token"))
        shop_id = shop_id_for_cipher(request.query_params.get("shop_cipher", ""))
        if shop_id is None:
            raise Refusal(ERR_INVALID_SHOP_CIPHER)
        gate.served_shop(shop_id, "202309")
        return v202309_page(gate, shop_id, dict(request.query_params), gate.json_body(raw))

    return await _serve(request, "202309_search", page, "return_orders")


def _v202309_filter(body: dict[str, Any]) -> Callable[[SimReturn], bool]:
    """Which returns the 202309 search body asks for."""
    bounds = {k: int_param(body, k) for k in
              ("update_time_ge", "update_time_lt", "create_time_ge", "create_time_lt")}
    return_ids = list_param(body, "return_ids")
    order_ids = list_param(body, "order_ids")
    types = list_param(body, "return_types")
    statuses = list_param(body, "return_status")
    if types is not None and any(t not in TYPE_OF_V202309_NAME for t in types):
        raise Refusal(ERR_INVALID_PARAMS, "return_types unknown")
    if statuses is not None and any(s not in STATUS_OF_V202309_NAME for s in statuses):
        raise Refusal(ERR_INVALID_PARAMS, "return_status unknown")
    wanted_ids = None if return_ids is None else {str(i) for i in return_ids}
    wanted_orders = None if order_ids is None else {str(i) for i in order_ids}
    wanted_types = None if types is None else {TYPE_OF_V202309_NAME[t] for t in types}
    wanted_status = None if statuses is None else {STATUS_OF_V202309_NAME[s] for s in statuses}
    ge, lt = bounds["update_time_ge"], bounds["update_time_lt"]
    cge, clt = bounds["create_time_ge"], bounds["create_time_lt"]

    def keep(r: SimReturn) -> bool:
        return (
            (ge is None or r.update_time >= ge) and (lt is None or r.update_time < lt)
            and (cge is None or r.create_time >= cge) and (clt is None or r.create_time < clt)
            and (wanted_ids is None or r.return_id in wanted_ids)
            and (wanted_orders is None or r.order_id in wanted_orders)
            and (wanted_types is None or r.reverse_type in wanted_types)
            and (wanted_status is None or r.status in wanted_status)
        )

    return keep


def v202309_page(gate: Gate, shop_id: str, query: dict[str, str],
                 body: dict[str, Any]) -> dict[str, Any]:
    size_text = query.get("page_size", "")
    if not size_text.isdigit() or not 1 <= int(size_text) <= V202309_PAGE_SIZE_MAX:
        raise Refusal(ERR_INVALID_PARAMS, f"page_size must be 1..{V202309_PAGE_SIZE_MAX}")
    size = int(size_text)
    if query.get("sort_field", "update_time") != "update_time":
        raise Refusal(ERR_INVALID_PARAMS, "the simulator sorts by update_time only")
    descending = query.get("sort_order", "ASC").upper() == "DESC"
    keep = _v202309_filter(body)
    gate.updated_while_paging(shop_id)
    matching = [r for r in gate.store.ordered(shop_id) if keep(r)]
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
