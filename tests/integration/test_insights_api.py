"""`GET /api/v1/insights` against a real FerretDB, in-process over ASGI: documents written as
the state machine writes them, answers worked out by hand."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent, ReturnItem
from contracts.read_model import (
    DEFAULT_RETURNS_COLLECTION,
    EventRecord,
    Outcome,
    ReturnState,
    events_collection,
    page_fields,
)
from contracts.statuses import ReturnStatus, ReverseType
from contracts.transitions import LIFECYCLE_RANK
from query_api.api import create_app
from query_api.insights.aggregate import milestones_of
from query_api.insights.reader import history_row
from query_api.settings import Settings
from tests.integration.query_api.data import serve

pytestmark = pytest.mark.integration

S = ReturnStatus
SHOP, OTHER_SHOP = "insights-shop", "insights-other-shop"
OPS_TOKEN, OTHER_TOKEN = "insights-ops", "insights-other"
SEEN = datetime(2025, 3, 10, tzinfo=UTC)
WINDOW = {"shop_id": SHOP, "from": "2025-03-03T00:00:00Z", "to": "2025-03-10T00:00:00Z"}
Doc = dict[str, Any]
MUG = ReturnItem(sku_id="sku-mug", seller_sku="MUG", product_name="Mug", quantity=1)
CUP = ReturnItem(sku_id="sku-cup", seller_sku="CUP", product_name="Cup", quantity=2)
LAMP = ReturnItem(sku_id="sku-lamp", seller_sku="LAMP", product_name="Lamp", quantity=1)


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def stored_return(shop: str, return_id: str, status: ReturnStatus, *, request: str | None,
                  refund: tuple[str, str] | None = None, reason: str | None = None,
                  reason_text: str | None = None, items: tuple[ReturnItem, ...] = (),
                  anomaly: bool = False, updated: str = "2025-03-10T00:00:00") -> Doc:
    details = ReturnDetails(
        refund=Money(amount=Decimal(refund[0]), currency=refund[1]) if refund else None,
        reason=reason, reason_text=reason_text, items=items or None,
        request_time=at(request) if request else None,
    )
    state = ReturnState(
        shop_id=shop, return_id=return_id, order_id=f"o-{return_id}", status=status,
        reverse_type=ReverseType.RETURN_AND_REFUND, update_time=at(updated), details=details,
        anomaly=anomaly, first_seen_at=SEEN, last_seen_at=SEEN,
    )
    return state.model_dump(mode="json") | page_fields(shop, status.value, at(updated)) | {
        "_id": f"{shop}:{return_id}", "version": 1}


def stored_event(shop: str, return_id: str, status: ReturnStatus, when: str,
                 outcome: Outcome = Outcome.APPLIED, *, inferred: tuple[ReturnStatus, ...] = ()
                 ) -> Doc:
    event = ReturnEvent(shop_id=shop, return_id=return_id, order_id=f"o-{return_id}",
                        status=status, update_time=at(when), source=EventSource.WEBHOOK_202309,
                        observed_at=SEEN)
    record = EventRecord(
        return_key=event.key, shop_id=shop, update_time=event.update_time,
        rank=LIFECYCLE_RANK[status], event=event, deliveries=1, last_observed_at=SEEN,
        partition=0, offset=0, outcome=outcome, inferred=inferred,
    )
    return record.model_dump(mode="json") | {"_id": event.event_id}


RETURNS = [
    stored_return(SHOP, "r1", S.COMPLETE, request="2025-03-03T10:00:00", refund=("10.00", "USD"),
                  reason="damaged", reason_text="Arrived damaged", items=(MUG,)),
    stored_return(SHOP, "r2", S.COMPLETE, request="2025-03-04T09:00:00", refund=("5.50", "USD"),
                  reason="damaged", items=(MUG, CUP)),
    stored_return(SHOP, "r3", S.AFTERSALE_REJECT_APPLICATION, request="2025-03-05T00:00:00",
                  refund=("99.00", "USD"), reason="wrong_item", items=(CUP,), anomaly=True),
    stored_return(SHOP, "r4", S.CANCEL_SUCCESS, request=None),  # a legacy webhook's return
    stored_return(SHOP, "r5", S.COMPLETE, request="2025-03-01T00:00:00", refund=("1.00", "USD"),
                  reason="damaged"),  # requested before the window
    stored_return(SHOP, "r6", S.AFTERSALE_APPLYING, request=None),  # first seen before it
    stored_return(SHOP, "r7", S.COMPLETE, request="2025-03-09T23:30:00", refund=("7.00", "GBP"),
                  reason="changed_mind", items=(LAMP,)),
    stored_return(OTHER_SHOP, "x1", S.COMPLETE, request="2025-03-04T00:00:00",
                  refund=("500.00", "USD"), reason="damaged", items=(MUG,)),
]
HISTORY = [
    stored_event(SHOP, "r1", S.AFTERSALE_APPLYING, "2025-03-03T10:00:00"),
    stored_event(SHOP, "r1", S.AFTERSALE_SUCCESS, "2025-03-03T12:00:00"),
    stored_event(SHOP, "r1", S.COMPLETE, "2025-03-04T10:00:00"),
    stored_event(SHOP, "r2", S.AFTERSALE_APPLYING, "2025-03-04T09:00:00"),
    stored_event(SHOP, "r2", S.COMPLETE, "2025-03-05T09:00:00", inferred=(S.AFTERSALE_SUCCESS,)),
    stored_event(SHOP, "r2", S.AFTERSALE_APPLYING, "2025-03-06T00:00:00", Outcome.REJECTED),
    stored_event(SHOP, "r3", S.AFTERSALE_APPLYING, "2025-03-05T00:00:00"),
    stored_event(SHOP, "r3", S.AFTERSALE_REJECT_APPLICATION, "2025-03-05T06:00:00"),
    stored_event(SHOP, "r3", S.COMPLETE, "2025-03-05T07:00:00", Outcome.REJECTED),
    stored_event(SHOP, "r4", S.AFTERSALE_APPLYING, "2025-03-06T00:00:00"),
    stored_event(SHOP, "r4", S.CANCEL_SUCCESS, "2025-03-06T01:00:00"),
    stored_event(SHOP, "r5", S.AFTERSALE_APPLYING, "2025-03-01T00:00:00"),
    stored_event(SHOP, "r5", S.COMPLETE, "2025-03-03T00:00:00", inferred=(S.AFTERSALE_SUCCESS,)),
    stored_event(SHOP, "r6", S.AFTERSALE_APPLYING, "2025-03-01T00:00:00"),
    stored_event(SHOP, "r7", S.AFTERSALE_APPLYING, "2025-03-09T23:30:00"),
    stored_event(SHOP, "r7", S.AFTERSALE_SUCCESS, "2025-03-10T00:30:00"),
    stored_event(SHOP, "r7", S.COMPLETE, "2025-03-10T02:30:00"),
    stored_event(OTHER_SHOP, "x1", S.AFTERSALE_APPLYING, "2025-03-04T00:00:00"),
    stored_event(OTHER_SHOP, "x1", S.COMPLETE, "2025-03-04T00:00:01",
                 inferred=(S.AFTERSALE_SUCCESS,)),
]


def with_milestones(doc: Doc) -> Doc:
    """A return's document with the milestones the state machine keeps of its applied history
    (as it does since read model version 3), here of its events in HISTORY."""
    applied = [history_row(e) for e in HISTORY
               if e["return_key"] == doc["_id"] and e["outcome"] == Outcome.APPLIED.value]
    return doc | {"milestones": milestones_of(applied).model_dump(mode="json")} if applied else doc


@pytest.fixture(scope="module")
async def api(mongodb_url: str) -> AsyncIterator[httpx.AsyncClient]:
    database = f"insights_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, tz_aware=True)
    await client[database][DEFAULT_RETURNS_COLLECTION].insert_many(
        [with_milestones(d) for d in RETURNS])
    await client[database][events_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(
        [dict(d) for d in HISTORY])
    settings = Settings(mongodb_url=mongodb_url, mongodb_database=database,
                        query_api_tokens={OPS_TOKEN: ["*"], OTHER_TOKEN: [OTHER_SHOP]})
    try:
        async with serve(create_app(settings), OPS_TOKEN) as http:
            yield http
    finally:
        await client.drop_database(database)
        await client.close()


async def insights(api: httpx.AsyncClient, **params: str) -> Doc:
    response = await api.get("/api/v1/insights", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    body: Doc = response.json()
    return body


async def test_insights_count_the_returns_requested_in_the_window_per_day_and_status(
    api: httpx.AsyncClient,
) -> None:
    body = await insights(api)
    assert (body["shop_id"], body["from"], body["to"], body["tz"], body["returns"]) == (
        SHOP, "2025-03-03T00:00:00Z", "2025-03-10T00:00:00Z", "UTC", 5)
    assert [(d["day"], d["by_status"]) for d in body["opened_per_day"]] == [
        ("2025-03-03", {"COMPLETE": 1}),
        ("2025-03-04", {"COMPLETE": 1}),
        ("2025-03-05", {"AFTERSALE_REJECT_APPLICATION": 1}),
        ("2025-03-06", {"CANCEL_SUCCESS": 1}),  # placed by its first event
        ("2025-03-07", {}),
        ("2025-03-08", {}),
        ("2025-03-09", {"COMPLETE": 1}),
    ]


async def test_insights_add_refunds_as_decimals_per_currency_and_week(
    api: httpx.AsyncClient,
) -> None:
    refunds = (await insights(api))["refunds_per_week"]
    assert refunds == [
        {"currency": "GBP", "total": "7.00", "returns": 1,
         "weeks": [{"week": "2025-03-03", "amount": "7.00", "returns": 1}]},
        {"currency": "USD", "total": "15.50", "returns": 2,
         "weeks": [{"week": "2025-03-03", "amount": "15.50", "returns": 2}]},
    ]


async def test_insights_rank_reasons_and_skus_by_returns_and_by_refunded_amount(
    api: httpx.AsyncClient,
) -> None:
    body = await insights(api)
    reasons, skus = body["top_reasons"], body["top_skus"]
    assert [(r["key"], r["label"], r["returns"]) for r in reasons["by_count"]] == [
        ("damaged", "Arrived damaged", 2), ("changed_mind", "changed_mind", 1),
        ("wrong_item", "wrong_item", 1)]
    assert [(c["currency"], [(r["key"], r["amount"]) for r in c["items"]])
            for c in reasons["by_amount"]] == [
        ("GBP", [("changed_mind", "7.00")]), ("USD", [("damaged", "15.50")])]
    assert reasons["unknown"] == 1
    assert [(r["key"], r["label"], r["returns"]) for r in skus["by_count"]] == [
        ("sku-cup", "CUP · Cup", 2), ("sku-mug", "MUG · Mug", 2), ("sku-lamp", "LAMP · Lamp", 1)]
    assert [(c["currency"], [(r["key"], r["amount"]) for r in c["items"]])
            for c in skus["by_amount"]] == [
        ("GBP", [("sku-lamp", "7.00")]), ("USD", [("sku-mug", "10.00")])]
    assert (skus["unknown"], skus["amount_left_out"]) == (1, 1)  # r4; r2 names two SKUs


async def test_insights_time_decisions_and_refunds_from_the_history(
    api: httpx.AsyncClient,
) -> None:
    durations = (await insights(api))["durations"]
    # decisions: r7 1 h, r1 2 h, r3 6 h, r2 24 h (inferred); r4 was cancelled by the buyer
    assert durations["to_decision"] == {"returns": 4, "median_s": 14_400.0, "p90_s": 66_960.0}
    # refunds: r7 3 h, r1 and r2 24 h
    assert durations["to_refund"] == {"returns": 3, "median_s": 86_400.0, "p90_s": 86_400.0}


async def test_insights_share_the_returns_with_an_anomaly_or_a_rejected_event(
    api: httpx.AsyncClient,
) -> None:
    assert (await insights(api))["anomalies"] == {
        "returns": 5, "anomaly": 1, "rejected_event": 2, "either": 2, "share": 0.4}


async def test_insights_bucket_days_and_weeks_in_the_time_zone_asked_for(
    api: httpx.AsyncClient,
) -> None:
    body = await insights(api, tz="Asia/Kuala_Lumpur")  # UTC+8
    days = [(d["day"], d["total"]) for d in body["opened_per_day"]]
    assert days[0] == ("2025-03-03", 1)
    assert days[-1] == ("2025-03-10", 1)  # r7: 2025-03-10 07:30 there
    gbp = body["refunds_per_week"][0]
    assert [(w["week"], w["amount"]) for w in gbp["weeks"]] == [
        ("2025-03-03", "0"), ("2025-03-10", "7.00")]


async def test_an_unknown_time_zone_is_a_422_that_says_so(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/insights", params={**WINDOW, "tz": "Mars/Olympus_Mons"})
    assert response.status_code == 422
    assert response.json()["message"].startswith(
        "tz: 'Mars/Olympus_Mons' is invalid. not a known IANA time zone name")


async def test_insights_are_scoped_by_token(api: httpx.AsyncClient) -> None:
    other = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    refused = await api.get("/api/v1/insights", params=WINDOW, headers=other)
    assert refused.status_code == 403
    mine = await api.get("/api/v1/insights", params={**WINDOW, "shop_id": OTHER_SHOP},
                         headers=other)
    assert mine.status_code == 200
    assert mine.json()["returns"] == 1
    anonymous = await api.get("/api/v1/insights", params=WINDOW, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    missing = await api.get("/api/v1/insights", params={"from": WINDOW["from"]})
    assert missing.status_code == 422


async def test_a_shop_whose_returns_all_have_a_request_time_is_timed_from_later_events(
    api: httpx.AsyncClient,
) -> None:
    body = await insights(api, shop_id=OTHER_SHOP)
    assert body["returns"] == 1
    assert body["durations"] == {  # x1: COMPLETE (after an inferred AFTERSALE_SUCCESS) at +1 s
        "to_decision": {"returns": 1, "median_s": 1.0, "p90_s": 1.0},
        "to_refund": {"returns": 1, "median_s": 1.0, "p90_s": 1.0},
    }
