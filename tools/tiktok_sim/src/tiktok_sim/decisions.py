"""The simulated TikTok takes seller decisions and serves reject reasons (an APIRouter).

Each call is checked like a search (app key, timestamp, signature, token, shop), then:
- 202309 `approve` / `reject` need an `idempotency_key`: the same key with the same request is
  answered as the first time without a second effect; with another request it is refused;
- the `decision` value must fit the return's type and status (`seller_actions.DECISIONS`), and a
  rejection's reason must be one of the return's reject reasons; else TikTok refuses, saying why;
- the return then moves on and its webhook is pushed (in the background, like TikTok).
Legacy `confirm` / `reject` (by `reverse_order_id`) behave alike, without idempotency key.
Every call is logged for tests (`GET /_sim/decisions`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from contracts.statuses import ReturnStatus
from tiktok_sim.driver import LifecycleDriver, Transition, WebhookSender
from tiktok_sim.guards import Gate, Refusal
from tiktok_sim.protocol import (
    ERR_INVALID_PARAMS,
    ERR_INVALID_SHOP_CIPHER,
    ERR_WRONG_API_VERSION,
    OK,
    ApiVersion,
    response,
    shop_id_for_cipher,
)
from tiktok_sim.seller_actions import DECISIONS, reject_reasons
from tiktok_sim.store import SimReturn, SimStats, SimStore, Step

V202309_DECIDE_PATH = "/return_refund/202309/returns/{return_id}/{verb}"
V202309_REASONS_PATH = "/return_refund/202309/reject_reasons"
LEGACY_CONFIRM_PATH = "/api/reverse/reverse_request/confirm"
LEGACY_REJECT_PATH = "/api/reverse/reverse_request/reject"
LEGACY_REASONS_PATH = "/api/reverse/reverse_reason/list"

# Refusal codes of decisions (the simulator's; TikTok's exact numbers are not public).
ERR_RETURN_NOT_FOUND = 25004001
ERR_STATUS_NOT_ALLOWED = 25004002
ERR_INVALID_REJECT_REASON = 25004003
ERR_IDEMPOTENCY_CONFLICT = 25004004
MESSAGES = {
    ERR_RETURN_NOT_FOUND: "Return not found",
    ERR_STATUS_NOT_ALLOWED: "The current return status does not allow this operation",
    ERR_INVALID_REJECT_REASON: "Invalid reject reason",
    ERR_IDEMPOTENCY_CONFLICT: "Idempotency key already used for another request",
}


class SimContext(Protocol):
    """What the router needs of the simulator's state (`tiktok_sim.app.SimState`)."""

    @property
    def driver(self) -> LifecycleDriver: ...

    @property
    def stats(self) -> SimStats: ...

    @property
    def sender(self) -> WebhookSender | None: ...

    @property
    def store(self) -> SimStore: ...

    @property
    def clock(self) -> Callable[[], float]: ...


class Refused(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass
class DecisionDesk:
    sim: SimContext
    answers: dict[tuple[str, str], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    _tasks: set[asyncio.Task[int]] = field(default_factory=set)

    def decide(self, ret: SimReturn, value: Any, verb: str, reason: Any) -> None:
        """Apply a decision to a return, or raise `Refused` saying why TikTok would not."""
        rule = DECISIONS.get(value) if isinstance(value, str) else None
        if rule is None or not value.startswith(verb.upper()):
            raise Refused(ERR_INVALID_PARAMS, f"decision {value!r} is not a {verb} decision")
        reverse_type, status, after = rule
        if (ret.reverse_type, ret.status) != (reverse_type, status):
            raise Refused(ERR_STATUS_NOT_ALLOWED,
                          f"{value} needs a {reverse_type.value} return in {status.value}; "
                          f"this one is a {ret.reverse_type.value} in {ret.status.value}")
        if verb == "reject":
            names = {r["name"] for r in reject_reasons(ret.reverse_type, ret.status, "en-US")}
            if reason not in names:
                raise Refused(ERR_INVALID_REJECT_REASON, f"{reason!r} is not a reject reason "
                              f"of this return")
        self._move(ret, after)

    def _move(self, ret: SimReturn, to: ReturnStatus) -> None:
        before = ret.status
        when = max(int(self.sim.clock()), ret.update_time + 1)
        ret.history.append(Step(to, when, "SELLER"))
        self.sim.stats.transitions += 1
        planned = self.sim.driver.webhooks_for(
            [Transition(ret.shop_id, ret.return_id, before, to, when, "SELLER")])
        sender = self.sim.sender
        if sender is not None:  # pushed after the answer, as TikTok does
            task = asyncio.create_task(sender.send(planned))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def shop(self, request: Request, version: ApiVersion) -> str:
        if version == "legacy":
            shop_id = request.query_params.get("shop_id") or ""
        else:
            shop_id = shop_id_for_cipher(request.query_params.get("shop_cipher", "")) or ""
            if not shop_id:
                raise Refused(ERR_INVALID_SHOP_CIPHER)
        known = self.sim.store.shop_version(shop_id)
        if known is not None and known != version:
            raise Refused(ERR_WRONG_API_VERSION)
        return shop_id

    def find(self, shop_id: str, return_id: Any) -> SimReturn:
        ret = self.sim.store.get(shop_id, str(return_id))
        if ret is None:
            raise Refused(ERR_RETURN_NOT_FOUND, f"no return {return_id}")
        return ret


def _refused(desk: DecisionDesk, endpoint: str, code: int, detail: str) -> JSONResponse:
    desk.sim.stats.refusals[str(code)] += 1
    body = response(code)
    body["message"] = MESSAGES.get(code, body["message"]) + (f": {detail}" if detail else "")
    return JSONResponse(body)


router = APIRouter()


def _desk(request: Request) -> DecisionDesk:
    desk: DecisionDesk = request.app.state.decision_desk
    return desk


def _gate(request: Request) -> Gate:
    gate: Gate = request.app.state.gate
    return gate


async def _handle(request: Request, endpoint: str, path: str, version: ApiVersion,
                  act: Callable[[str, dict[str, Any]], dict[str, Any]]) -> JSONResponse:
    desk, gate = _desk(request), _gate(request)
    desk.sim.stats.requests[endpoint] += 1
    fault = await gate.injected_fault(endpoint)
    if fault is not None:
        return fault
    raw = await request.body()
    token = (request.query_params.get("access_token") if version == "legacy"
             else request.headers.get("x-tts-access-token"))
    call: dict[str, Any] = {"endpoint": endpoint, "path": path,
                            "query": dict(request.query_params)}
    try:
        gate.check_auth(request, path, None if version == "legacy" else raw, token)
        shop_id = desk.shop(request, version)
        call["shop_id"] = shop_id
        body = gate.json_body(raw)
        call["body"] = body
        data = act(shop_id, body)
    except Refused as exc:
        desk.calls.append(call | {"code": exc.code})
        return _refused(desk, endpoint, exc.code, exc.detail)
    except Refusal as exc:
        code, detail = exc.code, exc.detail
        desk.calls.append(call | {"code": code})
        return _refused(desk, endpoint, code, detail)
    desk.calls.append(call | {"code": OK})
    return JSONResponse(response(OK, data, request_id=f"sim-decision-{len(desk.calls)}"))


async def _v202309_decision(request: Request, return_id: str, verb: str) -> JSONResponse:
    desk = _desk(request)
    key = request.query_params.get("idempotency_key", "")

    def act(shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not key:
            raise Refused(ERR_INVALID_PARAMS, "idempotency_key is required")
        fingerprint = json.dumps([verb, return_id, body], sort_keys=True)
        known = desk.answers.get((shop_id, key))
        if known is not None:
            if known[0] != fingerprint:
                raise Refused(ERR_IDEMPOTENCY_CONFLICT, key)
            return known[1]  # the same request again: the same answer, no second effect
        desk.decide(desk.find(shop_id, return_id), body.get("decision"), verb,
                    body.get("reject_reason"))
        desk.answers[(shop_id, key)] = (fingerprint, {})
        return {}

    path = V202309_DECIDE_PATH.format(return_id=return_id, verb=verb)
    return await _handle(request, f"202309_{verb}", path, "202309", act)


@router.post(V202309_DECIDE_PATH.replace("{verb}", "approve"))
async def approve_202309(request: Request, return_id: str) -> JSONResponse:
    return await _v202309_decision(request, return_id, "approve")


@router.post(V202309_DECIDE_PATH.replace("{verb}", "reject"))
async def reject_202309(request: Request, return_id: str) -> JSONResponse:
    return await _v202309_decision(request, return_id, "reject")


def _legacy(desk: DecisionDesk, verb: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    def act(shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ret = desk.find(shop_id, body.get("reverse_order_id"))
        value = next((v for v, (t, s, _) in DECISIONS.items()
                      if v.startswith(verb.upper()) and (t, s) == (
                          ret.reverse_type, ret.status)), None)
        if value is None:
            raise Refused(ERR_STATUS_NOT_ALLOWED, f"the return is {ret.status.value}")
        desk.decide(ret, value, verb, body.get("reverse_reject_reason_key"))
        return {}
    return act


@router.post(LEGACY_CONFIRM_PATH)
async def legacy_confirm(request: Request) -> JSONResponse:
    return await _handle(request, "legacy_confirm", LEGACY_CONFIRM_PATH, "legacy",
                        _legacy(_desk(request), "approve"))


@router.post(LEGACY_REJECT_PATH)
async def legacy_reject(request: Request) -> JSONResponse:
    return await _handle(request, "legacy_reject", LEGACY_REJECT_PATH, "legacy",
                        _legacy(_desk(request), "reject"))


@router.get(V202309_REASONS_PATH)
async def reasons_202309(request: Request) -> JSONResponse:
    desk = _desk(request)

    def act(shop_id: str, _: dict[str, Any]) -> dict[str, Any]:
        ret = desk.find(shop_id, request.query_params.get("return_or_cancel_id", ""))
        locale = request.query_params.get("locale", "en-US")
        return {"reasons": reject_reasons(ret.reverse_type, ret.status, locale)}
    return await _handle(request, "202309_reject_reasons", V202309_REASONS_PATH, "202309",
                        act)


@router.post(LEGACY_REASONS_PATH)
async def reasons_legacy(request: Request) -> JSONResponse:
    desk = _desk(request)

    def act(shop_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ret = desk.find(shop_id, body.get("reverse_order_id"))
        reasons = reject_reasons(ret.reverse_type, ret.status,
                                 str(body.get("language") or "en-US"))
        return {"reverse_reason_list": [
            {"reverse_reason_key": r["name"], "reverse_reason": r["text"]} for r in reasons]}
    return await _handle(request, "legacy_reject_reasons", LEGACY_REASONS_PATH, "legacy",
                        act)


@router.get("/_sim/decisions")
async def decision_calls(request: Request, shop_id: str | None = None,
                         return_id: str | None = None) -> list[dict[str, Any]]:
    """Every decision call received (refused ones too), oldest first."""
    desk = _desk(request)

    def wanted(call: dict[str, Any]) -> bool:
        ids = {str(call.get("body", {}).get("reverse_order_id")), call["path"]}
        return ((shop_id is None or call.get("shop_id") == shop_id)
                and (return_id is None or any(return_id in i for i in ids)))
    return [c for c in desk.calls if wanted(c) and "reasons" not in c["endpoint"]]
