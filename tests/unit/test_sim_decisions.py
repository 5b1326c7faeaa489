"""Seller decisions against the simulated TikTok, through the ingestor's real client
(`ingestor.tiktok_decisions`, signed calls) in process: what TikTok accepts, refuses and
repeats, the reject reasons it serves, and the deadlines it gives."""

from __future__ import annotations

import random
import time
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from contracts.decisions import DECISION_TABLE, DecisionCommand, SellerDecision
from contracts.messages import ReturnEvent
from contracts.statuses import ReturnStatus, ReverseType
from ingestor.tiktok_client import TikTokApiError, TikTokClientConfig, TikTokShopClient
from ingestor.tiktok_decisions import reject_reasons, send_decision
from ingestor.tiktok_mapping import map_202309_record
from tiktok_sim.app import SimState, create_app
from tiktok_sim.decisions import ERR_INVALID_REJECT_REASON, ERR_STATUS_NOT_ALLOWED
from tiktok_sim.protocol import ApiVersion, shop_cipher_for
from tiktok_sim.seller_actions import DECISIONS, response_window
from tiktok_sim.settings import SimSettings
from tiktok_sim.store import SimReturn, Step, generate_returns, v202309_record

SHOP = "7494560109732840000"
S, T = ReturnStatus, ReverseType


def sim(version: ApiVersion = "202309") -> tuple[FastAPI, SimState]:
    app = create_app(SimSettings())
    state: SimState = app.state.sim
    state.store.register_shop(SHOP, version)
    return app, state


def client(app: FastAPI, version: ApiVersion = "202309") -> TikTokShopClient:
    config = TikTokClientConfig(
        base_url="http://sim", app_key="dev-app-key", app_secret="dev-app-secret",
        access_token="dev-access-token", shop_id=SHOP, api_version=version,
        shop_cipher=shop_cipher_for(SHOP), requests_per_second=1000, max_attempts=1)
    return TikTokShopClient(config, transport=httpx.ASGITransport(app=app))


def add_return(state: SimState, reverse_type: ReverseType, *statuses: ReturnStatus,
               version: ApiVersion = "202309") -> SimReturn:
    ret = generate_returns(state.store, random.Random(len(state.store)), SHOP, 1, version,
                           now=int(time.time()))[0]
    ret.reverse_type = reverse_type
    start = int(time.time()) - 3600
    ret.history = [Step(s, start + n, "BUYER") for n, s in enumerate(statuses)]
    return ret


def command(ret: SimReturn, decision: SellerDecision, reason: str | None = None,
            decision_id: str | None = None) -> DecisionCommand:
    return DecisionCommand.model_validate({
        "decision_id": decision_id or str(uuid4()), "shop_id": SHOP,
        "return_id": ret.return_id, "decision": decision, "reverse_type": ret.reverse_type,
        "status": ret.status, "return_update_time": ret.update_time, "reason": reason,
        "label": "test",
    })


async def test_approving_a_refund_moves_it_to_success() -> None:
    app, state = sim()
    ret = add_return(state, T.REFUND_ONLY, S.AFTERSALE_APPLYING)
    async with client(app) as tiktok:
        await send_decision(tiktok, command(ret, SellerDecision.APPROVE))
    assert ret.status is S.AFTERSALE_SUCCESS
    assert ret.history[-1].actor == "SELLER"
    (call,) = state.stats.requests.keys()
    assert call == "202309_approve"


async def test_the_same_idempotency_key_is_one_decision_at_tiktok() -> None:
    app, state = sim()
    ret = add_return(state, T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING)
    once = command(ret, SellerDecision.APPROVE)
    async with client(app) as tiktok:
        await send_decision(tiktok, once)
        await send_decision(tiktok, once)  # a redelivered command: answered, not applied again
    assert [s.status for s in ret.history] == [S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as admin:
        calls = (await admin.get("/_sim/decisions", params={"return_id": ret.return_id})).json()
    assert [c["query"]["idempotency_key"] for c in calls] == [str(once.decision_id)] * 2
    assert all(c["code"] == 0 for c in calls)


async def test_a_decision_the_status_no_longer_allows_is_refused_naming_the_status() -> None:
    app, state = sim()
    ret = add_return(state, T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING)
    stale = command(ret, SellerDecision.APPROVE)
    ret.history.append(Step(S.CANCEL_SUCCESS, ret.update_time + 1, "BUYER"))  # moved at TikTok
    async with client(app) as tiktok:
        with pytest.raises(TikTokApiError) as refused:
            await send_decision(tiktok, stale)
    assert refused.value.code == ERR_STATUS_NOT_ALLOWED
    assert "CANCEL_SUCCESS" in refused.value.message
    assert ret.status is S.CANCEL_SUCCESS


async def test_a_rejection_needs_one_of_the_returns_reject_reasons() -> None:
    app, state = sim()
    ret = add_return(state, T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING,
                     S.AFTERSALE_BUYER_SHIPPED)
    async with client(app) as tiktok:
        reasons = await reject_reasons(tiktok, ret.return_id, "de-DE")
        with pytest.raises(TikTokApiError) as refused:
            await send_decision(tiktok, command(ret, SellerDecision.REJECT, "no_such_reason"))
        await send_decision(tiktok, command(ret, SellerDecision.REJECT, reasons[0].name))
    assert refused.value.code == ERR_INVALID_REJECT_REASON
    assert reasons[0].name == "seller_reject_receive_package_damaged"
    assert reasons[0].text == "Der Artikel ist beschädigt"
    assert ret.status is S.AFTERSALE_SELLER_REJECT_RECEIVE


async def test_legacy_shops_confirm_and_reject_by_reverse_order_id() -> None:
    app, state = sim("legacy")
    refund = add_return(state, T.REFUND_ONLY, S.AFTERSALE_APPLYING, version="legacy")
    parcel = add_return(state, T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING, version="legacy")
    async with client(app, "legacy") as tiktok:
        await send_decision(tiktok, command(refund, SellerDecision.APPROVE))
        (reason, *_) = await reject_reasons(tiktok, parcel.return_id, "en-US")
        await send_decision(tiktok, command(parcel, SellerDecision.REJECT, reason.name))
    assert refund.status is S.AFTERSALE_SUCCESS
    assert parcel.status is S.AFTERSALE_REJECT_APPLICATION


def test_a_return_waiting_on_the_seller_carries_a_deadline_tiktok_clears_afterwards() -> None:
    _, state = sim()
    ret = add_return(state, T.REFUND_ONLY, S.AFTERSALE_APPLYING)
    record = v202309_record(ret)
    (action,) = record["seller_next_action_response"]
    assert action["action"] == "SELLER_RESPOND_REFUND"
    assert action["deadline"] == max(ret.update_time, ret.listed_at) + response_window(
        ret.return_id)
    event = map_202309_record(record, SHOP)
    assert isinstance(event, ReturnEvent)
    assert event.details.next_actions
    ret.history.append(Step(S.AFTERSALE_SUCCESS, ret.update_time + 1, "SELLER"))
    assert "seller_next_action_response" not in v202309_record(ret)


def test_the_simulators_decision_table_agrees_with_the_contracts_one() -> None:
    simulated = {(t, s, v) for v, (t, s, _) in DECISIONS.items()}
    contracted = {(t, s, value.value) for (t, s), by in DECISION_TABLE.items()
                  for value in by.values()}
    assert simulated == contracted
