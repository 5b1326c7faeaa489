"""The query API against a real MongoDB-compatible server (FerretDB), in-process over ASGI."""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from contracts.decisions import allowed_decisions
from contracts.messages import (
    EventSource,
    Money,
    RejectedEvent,
    RejectionReason,
    ReturnDetails,
    ReturnEvent,
    ReturnItem,
    return_key,
)
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    DAY_S,
    DEFAULT_RETURNS_COLLECTION,
    META_COLLECTION,
    REJECTIONS_COLLECTION,
    REJECTIONS_INDEXES,
    RETURNS_INDEXES,
    EventRecord,
    Outcome,
    ReturnState,
    bucket_start,
    counts_collection,
    events_collection,
    page_fields,
)
from contracts.statuses import STATUS_TABS, ReturnStatus, ReverseType
from contracts.transitions import LIFECYCLE_RANK
from devinfra.proc import free_port
from query_api.api import create_app
from query_api.export import csv_row
from query_api.settings import Settings

pytestmark = pytest.mark.integration

SHOP_A = "7494560109732840000"
SHOP_B = "7494560109732849999"
T0 = 1_732_600_000
STATUSES = list(ReturnStatus)
Doc = dict[str, Any]


def make_return(
    shop_id: str,
    n: int,
    *,
    status: ReturnStatus,
    reverse_type: ReverseType | None,
    update_time: int,
    order_id: str | None = None,
    anomaly: bool = False,
) -> Doc:
    """A read-model document exactly as the state machine writes it (plus bookkeeping)."""
    return_id = f"40353185040860{n:05d}"
    details = ReturnDetails(
        refund=Money(amount=Decimal("12.34"), currency="USD"),
        reason="damaged",
        items=(ReturnItem(sku_id="sku-1", product_name="Mug", quantity=1),),
        tracking_number=f"TRK{n}",
        request_time=T0 - 100,
    )
    state = ReturnState(
        shop_id=shop_id,
        return_id=return_id,
        order_id=order_id or f"5764614130387{n:05d}",
        status=status,
        reverse_type=reverse_type,
        update_time=update_time,
        details=details,
        anomaly=anomaly,
        first_seen_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
        last_seen_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
    )
    # Bookkeeping fields the state machine may add: the API must ignore them.
    return state.model_dump(mode="json") | page_fields(shop_id, status.value, update_time) | {
        "_id": return_key(shop_id, return_id),
        "version": 3,
        "applied": {"partition": 0, "offset": n},
    }


def history_document(doc: Doc) -> Doc:
    """The one event of a seeded return, as the state machine stores it in its history."""
    event = ReturnEvent(
        shop_id=doc["shop_id"], return_id=doc["return_id"], order_id=doc["order_id"],
        status=doc["status"], update_time=doc["update_time"], reverse_type=doc["reverse_type"],
        details=ReturnDetails.model_validate(doc["details"]), source=EventSource.WEBHOOK_202309,
        notification_id=f"n-{doc['return_id']}",
        observed_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
    )
    record = EventRecord(
        return_key=doc["_id"], shop_id=event.shop_id, update_time=event.update_time,
        rank=LIFECYCLE_RANK[event.status], event=event, deliveries=2,
        last_observed_at=event.observed_at, partition=0, offset=doc["applied"]["offset"],
        outcome=Outcome.APPLIED,
    )
    return record.model_dump(mode="json") | {"_id": event.event_id}


def counts_documents(docs: list[Doc]) -> list[Doc]:
    """Status counts as the state machine keeps them: per shop and partition (here the
    returns of even and odd number stand for two partitions)."""
    tallies: dict[tuple[str, int], Counter[str]] = {}
    days: dict[tuple[str, int], dict[str, Counter[str]]] = {}
    for doc in docs:
        pair = (doc["shop_id"], int(doc["applied"]["offset"]) % 2)
        tallies.setdefault(pair, Counter())[doc["status"]] += 1
        day = str(bucket_start(doc["update_time"], DAY_S))
        days.setdefault(pair, {}).setdefault(day, Counter())[doc["status"]] += 1
    return [{"_id": f"{shop}:{p}", "shop_id": shop, "partition": p, "offset": 10_000,
             "counts": dict(tally), "days": {d: dict(c) for d, c in days[(shop, p)].items()}}
            for (shop, p), tally in tallies.items()]


def seed_documents() -> list[Doc]:
    docs = []
    for n in range(30):  # shop A: every status, both main types, ties on update_time
        status = STATUSES[n % len(STATUSES)]
        reverse_type: ReverseType | None = (
            ReverseType.REFUND_ONLY if n % 2 else ReverseType.RETURN_AND_REFUND
        )
        if n == 29:
            reverse_type = None  # a return first met through a legacy webhook without a type
        docs.append(
            make_return(
                SHOP_A,
                n,
                status=status,
                reverse_type=reverse_type,
                update_time=T0 + (n // 4) * 60,  # groups of 4 returns share one update_time
                order_id="ORDER-SHARED" if n in (3, 17) else None,
                anomaly=n % 7 == 0,
            )
        )
    for n in range(100, 105):  # shop B
        docs.append(
            make_return(
                SHOP_B,
                n,
                status=ReturnStatus.AFTERSALE_APPLYING,
                reverse_type=ReverseType.REQUEST_CANCEL,
                update_time=T0 + 10_000 + n,
            )
        )
    return docs


DOCS = seed_documents()
SHOP_A_DOCS = [d for d in DOCS if d["shop_id"] == SHOP_A]
REASONS = list(RejectionReason)


def seed_rejections() -> list[Doc]:
    """Rejections as the state machine records them: `model_dump(mode="json") | {"_id": id}`."""
    docs = []
    for n in range(14):
        rejection = RejectedEvent(
            rejection_id=f"rej-{n:03d}",
            reason=REASONS[n % len(REASONS)],
            detail=f"rejection {n}",
            stage="state_machine" if n % 2 else "ingestor",
            shop_id=SHOP_A if n < 10 else SHOP_B,
            return_id=f"r-{n}",
            raw='{"type": 12}',
            # groups of 3 share one instant: ties are broken by _id
            rejected_at=datetime(2024, 11, 27, 4, n // 3, tzinfo=UTC),
        )
        docs.append(rejection.model_dump(mode="json") | {"_id": rejection.rejection_id})
    return docs


REJECTION_DOCS = seed_rejections()


def newest_first(docs: Iterable[Doc]) -> list[str]:
    ordered = sorted(docs, key=lambda d: (d["update_time"], d["_id"]), reverse=True)
    return [d["_id"] for d in ordered]


@pytest.fixture(scope="module")
def database_name() -> str:
    return f"query_api_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
async def mongo(mongodb_url: str, database_name: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, tz_aware=True)
    db = client[database_name]
    await db[DEFAULT_RETURNS_COLLECTION].insert_many(DOCS)
    await db[events_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(
        [history_document(d) for d in DOCS])
    await db[counts_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(counts_documents(DOCS))
    await db[REJECTIONS_COLLECTION].insert_many(REJECTION_DOCS)
    yield client
    await client.drop_database(database_name)
    await client.close()


OPS_TOKEN, SHOP_A_TOKEN = "test-ops", "test-shop-a"


def make_settings(**values: Any) -> Settings:
    return Settings(query_api_tokens={OPS_TOKEN: ["*"], SHOP_A_TOKEN: [SHOP_A]}, **values)


@asynccontextmanager
async def serve(app: FastAPI, token: str = OPS_TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://query-api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


@pytest.fixture(scope="module")
async def api(
    mongo: AsyncMongoClient[Doc], mongodb_url: str, database_name: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(mongodb_url=mongodb_url, mongodb_database=database_name)
    async with serve(create_app(settings)) as client:
        yield client


async def list_ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/v1/returns", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [item["id"] for item in body["items"]]


# ---------------------------------------------------------------------------- list and filters


async def test_list_returns_every_return_of_a_shop_newest_update_first(
    api: httpx.AsyncClient,
) -> None:
    assert await list_ids(api, shop_id=SHOP_A) == newest_first(SHOP_A_DOCS)


async def test_list_without_shop_returns_every_shop(api: httpx.AsyncClient) -> None:
    assert await list_ids(api) == newest_first(DOCS)


async def test_list_items_carry_no_history(api: httpx.AsyncClient) -> None:
    items = (await api.get("/api/v1/returns", params={"shop_id": SHOP_A})).json()["items"]
    assert items
    assert all("history" not in item for item in items)


async def test_list_items_are_the_stored_return_with_its_id(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/returns", params={"shop_id": SHOP_B, "limit": 1})
    item = response.json()["items"][0]
    stored = next(d for d in DOCS if d["_id"] == item["id"])
    expected = {k: v for k, v in stored.items() if k in ReturnState.model_fields}
    assert {k: v for k, v in item.items() if k not in ("id", "allowed_decisions")} == expected
    state = ReturnState.model_validate(stored)  # and the decisions its status offers
    assert item["allowed_decisions"] == list(allowed_decisions(state.reverse_type, state.status))
    assert "version" not in item
    assert "last_offset" not in item
    assert "_id" not in item


@pytest.mark.parametrize("status", list(ReturnStatus))
async def test_filter_by_one_status(api: httpx.AsyncClient, status: ReturnStatus) -> None:
    expected = newest_first(d for d in SHOP_A_DOCS if d["status"] == status.value)
    assert expected  # the seed holds every status
    assert await list_ids(api, shop_id=SHOP_A, status=status.value) == expected


async def test_status_is_repeatable_and_matches_any_of_them(api: httpx.AsyncClient) -> None:
    wanted = {"AFTERSALE_APPLYING", "COMPLETE", "CLOSED"}
    ids = await list_ids(api, shop_id=SHOP_A, status=sorted(wanted))
    assert ids == newest_first(d for d in SHOP_A_DOCS if d["status"] in wanted)


@pytest.mark.parametrize("reverse_type", list(ReverseType))
async def test_filter_by_reverse_type(api: httpx.AsyncClient, reverse_type: ReverseType) -> None:
    ids = await list_ids(api, reverse_type=reverse_type.value)
    expected = newest_first(d for d in DOCS if d["reverse_type"] == reverse_type.value)
    assert expected
    assert ids == expected


async def test_filters_combine(api: httpx.AsyncClient) -> None:
    ids = await list_ids(
        api, shop_id=SHOP_A, status="AFTERSALE_APPLYING", reverse_type="RETURN_AND_REFUND"
    )
    expected = newest_first(
        d
        for d in SHOP_A_DOCS
        if d["status"] == "AFTERSALE_APPLYING" and d["reverse_type"] == "RETURN_AND_REFUND"
    )
    assert expected
    assert ids == expected


async def test_filter_by_order_id(api: httpx.AsyncClient) -> None:
    ids = await list_ids(api, shop_id=SHOP_A, order_id="ORDER-SHARED")
    assert ids == newest_first(d for d in SHOP_A_DOCS if d["order_id"] == "ORDER-SHARED")
    assert len(ids) == 2
    assert await list_ids(api, shop_id=SHOP_B, order_id="ORDER-SHARED") == []


async def test_update_time_range_is_from_inclusive_to_exclusive(api: httpx.AsyncClient) -> None:
    lo, hi = T0 + 60, T0 + 180
    ids = await list_ids(api, shop_id=SHOP_A, updated_from=lo, updated_to=hi)
    expected = newest_first(d for d in SHOP_A_DOCS if lo <= d["update_time"] < hi)
    assert len(expected) == 8
    assert ids == expected
    ids_from = await list_ids(api, shop_id=SHOP_A, updated_from=T0 + 420)
    assert ids_from == newest_first(d for d in SHOP_A_DOCS if d["update_time"] >= T0 + 420)
    ids_to = await list_ids(api, shop_id=SHOP_A, updated_to=T0 + 60)
    assert ids_to == newest_first(d for d in SHOP_A_DOCS if d["update_time"] < T0 + 60)


# ---------------------------------------------------------------------------- pagination


async def page_through(api: httpx.AsyncClient, **params: Any) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/v1/returns", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        assert len(body["items"]) <= params["limit"]
        ids += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 3, 4, 7, 30])
async def test_paging_visits_every_return_once_in_order_despite_update_time_ties(
    api: httpx.AsyncClient, limit: int
) -> None:
    ids, pages = await page_through(api, shop_id=SHOP_A, limit=limit)
    assert ids == newest_first(SHOP_A_DOCS)
    assert len(set(ids)) == len(ids)
    assert pages == -(-len(SHOP_A_DOCS) // limit)  # no trailing empty page


async def test_paging_keeps_the_filters(api: httpx.AsyncClient) -> None:
    statuses = ["AFTERSALE_APPLYING", "COMPLETE", "CLOSED", "CANCEL_SUCCESS"]
    ids, _ = await page_through(api, shop_id=SHOP_A, status=statuses, limit=2)
    assert ids == newest_first(d for d in SHOP_A_DOCS if d["status"] in statuses)


async def test_a_tab_spread_over_busy_and_quiet_days_pages_in_order(
    mongo: AsyncMongoClient[Doc], mongodb_url: str
) -> None:
    """Read bucket by bucket: a busy day (read hour by hour) between quiet ones."""
    db_name = f"query_api_buckets_{uuid.uuid4().hex[:12]}"
    day = 86_400
    times = ([T0 - 3 * day + n * 600 for n in range(40)]  # quiet
             + [T0 + n * 300 for n in range(250)]  # busy: 250 in one day
             + [T0 + 2 * day + n * 4000 for n in range(15)])  # quiet, the newest
    docs = [make_return(SHOP_A, n, status=STATUSES[n % 3], reverse_type=None, update_time=t)
            for n, t in enumerate(times)]
    db = mongo[db_name]
    try:
        await db[DEFAULT_RETURNS_COLLECTION].insert_many(docs)
        await db[counts_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(
            counts_documents(docs))
        settings = make_settings(mongodb_url=mongodb_url, mongodb_database=db_name)
        async with serve(create_app(settings)) as client:
            tabs: list[tuple[list[str], int]] = [
                ([], 50), ([STATUSES[1].value], 7), ([STATUSES[0].value, STATUSES[2].value], 200)]
            for statuses, limit in tabs:
                ids, _ = await page_through(client, shop_id=SHOP_A, limit=limit, status=statuses)
                assert ids == newest_first(d for d in docs
                                           if not statuses or d["status"] in statuses)
    finally:
        await mongo.drop_database(db_name)


async def test_default_page_size_is_50(mongo: AsyncMongoClient[Doc], mongodb_url: str) -> None:
    db_name = f"query_api_page_{uuid.uuid4().hex[:12]}"
    many = [
        make_return(SHOP_A, n, status=ReturnStatus.COMPLETE, reverse_type=None, update_time=T0)
        for n in range(55)
    ]
    try:
        await mongo[db_name][DEFAULT_RETURNS_COLLECTION].insert_many(many)
        settings = make_settings(mongodb_url=mongodb_url, mongodb_database=db_name)
        async with serve(create_app(settings)) as client:
            body = (await client.get("/api/v1/returns")).json()
            assert [i["id"] for i in body["items"]] == newest_first(many)[:50]
            assert body["next_cursor"] is not None
    finally:
        await mongo.drop_database(db_name)


# ---------------------------------------------------------------------------- counts, detail


async def test_counts_hold_every_status_and_all(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/returns/counts", params={"shop_id": SHOP_A})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shop_id"] == SHOP_A
    tally = Counter(d["status"] for d in SHOP_A_DOCS)
    expected = {"ALL": len(SHOP_A_DOCS)} | {s.value: tally[s.value] for s in ReturnStatus}
    assert body["counts"] == expected


async def test_counts_of_a_shop_without_returns_are_all_zero(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/returns/counts", params={"shop_id": "no-such-shop"})
    counts = response.json()["counts"]
    assert counts == {"ALL": 0} | {s.value: 0 for s in ReturnStatus}


async def test_counts_without_shop_cover_every_shop(api: httpx.AsyncClient) -> None:
    counts = (await api.get("/api/v1/returns/counts")).json()["counts"]
    assert counts["ALL"] == len(DOCS)
    assert counts["AFTERSALE_APPLYING"] == sum(d["status"] == "AFTERSALE_APPLYING" for d in DOCS)


async def test_detail_returns_the_return_with_its_history(api: httpx.AsyncClient) -> None:
    stored = SHOP_A_DOCS[5]
    response = await api.get(f"/api/v1/returns/{SHOP_A}/{stored['return_id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == stored["_id"]
    (entry,) = body["history"]
    assert entry["event_id"] == f"{stored['_id']}:{stored['status']}:{stored['update_time']}"
    assert (entry["status"], entry["outcome"], entry["deliveries"]) == (
        stored["status"], "applied", 2)
    assert entry["notification_id"] == f"n-{stored['return_id']}"
    assert entry["details"]["tracking_number"] == stored["details"]["tracking_number"]
    assert body["details"]["refund"] == {"amount": "12.34", "currency": "USD"}


async def test_detail_of_an_unknown_return_is_404_with_a_message(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/api/v1/returns/{SHOP_A}/does-not-exist")
    assert response.status_code == 404
    assert "does-not-exist" in response.json()["detail"]


async def test_detail_does_not_leak_another_shops_return(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/api/v1/returns/{SHOP_B}/{SHOP_A_DOCS[0]['return_id']}")
    assert response.status_code == 404


# ---------------------------------------------------------------------------- errors


async def test_unknown_status_is_422_listing_the_valid_statuses(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/returns", params={"status": ["COMPLETE", "REFUNDED"]})
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("status[1]: 'REFUNDED' is invalid. ")
    assert all(status.value in message for status in ReturnStatus)


async def test_unknown_reverse_type_is_422_listing_the_valid_types(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/api/v1/returns", params={"reverse_type": "REPLACEMENT"})
    assert response.status_code == 422
    message = response.json()["message"]
    assert all(t.value in message for t in ReverseType)


@pytest.mark.parametrize("limit", [0, 201, "many"])
async def test_limit_outside_1_to_200_is_422(api: httpx.AsyncClient, limit: int | str) -> None:
    response = await api.get("/api/v1/returns", params={"limit": limit})
    assert response.status_code == 422
    assert "limit" in response.json()["message"]


@pytest.mark.parametrize("cursor", ["garbage!", "WzEsMl0", "eyIkZ3QiOiAiIn0"])
async def test_bad_cursor_is_400_with_a_message(api: httpx.AsyncClient, cursor: str) -> None:
    response = await api.get("/api/v1/returns", params={"cursor": cursor})
    assert response.status_code == 400
    assert "invalid cursor" in response.json()["detail"]


# ---------------------------------------------------------------------------- operations


async def test_every_returns_index_exists_after_startup(
    api: httpx.AsyncClient, mongo: AsyncMongoClient[Doc], database_name: str
) -> None:
    collection = mongo[database_name][DEFAULT_RETURNS_COLLECTION]
    indexes = {ix["name"]: list(ix["key"].items()) async for ix in await collection.list_indexes()}
    for keys, name in RETURNS_INDEXES:
        assert name in indexes, f"index {name} missing: {sorted(indexes)}"
        assert [(k, int(v)) for k, v in indexes[name]] == keys


async def test_healthz_and_readyz_answer_ok(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "mongodb": True, "indexes": True}


async def test_metrics_hold_a_latency_histogram_per_route(api: httpx.AsyncClient) -> None:
    await api.get("/api/v1/returns/counts", params={"shop_id": SHOP_A})
    text = (await api.get("/metrics")).text
    assert "query_api_request_duration_seconds_bucket" in text
    assert 'route="/api/v1/returns/counts"' in text


async def test_openapi_describes_the_response_models(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert {"ReturnsPage", "ReturnView", "StatusCounts", "HistoryEntry"} <= set(schemas)
    paths = spec["paths"]
    assert {
        "/api/v1/returns",
        "/api/v1/returns/counts",
        "/api/v1/returns/{shop_id}/{return_id}",
    } <= set(paths)


async def test_readyz_and_queries_are_503_while_mongodb_does_not_answer() -> None:
    settings = make_settings(
        mongodb_url=f"mongodb://127.0.0.1:{free_port()}/",
        mongodb_database="unreachable",
        mongodb_timeout_ms=300,
    )
    async with serve(create_app(settings)) as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["mongodb"] is False
        listing = await client.get("/api/v1/returns")
        assert listing.status_code == 503
        assert "database" in listing.json()["detail"]


async def test_the_meta_document_switches_the_collection_read(
    mongo: AsyncMongoClient[Doc], mongodb_url: str
) -> None:
    db_name = f"query_api_meta_{uuid.uuid4().hex[:12]}"
    db = mongo[db_name]
    try:
        await db[DEFAULT_RETURNS_COLLECTION].insert_many(DOCS[:3])
        await db["returns_v2"].insert_many(DOCS[3:5])
        await db[META_COLLECTION].insert_one(
            {"_id": ACTIVE_READ_MODEL_ID, "collection": "returns_v2"}
        )
        settings = make_settings(
            mongodb_url=mongodb_url, mongodb_database=db_name, active_collection_cache_seconds=0
        )
        async with serve(create_app(settings)) as client:
            assert await list_ids(client) == newest_first(DOCS[3:5])
            indexes = [ix["name"] async for ix in await db["returns_v2"].list_indexes()]
            assert {name for _, name in RETURNS_INDEXES} <= set(indexes)

            await db[META_COLLECTION].delete_one({"_id": ACTIVE_READ_MODEL_ID})
            assert await list_ids(client) == newest_first(DOCS[:3])
    finally:
        await mongo.drop_database(db_name)


# ---------------------------------------------------------------------------- authentication


async def test_no_or_unknown_token_is_401(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer nope"}):
        response = await api.get("/api/v1/returns", params={"shop_id": SHOP_A}, headers=headers)
        assert response.status_code == 401, response.text
    assert (await api.get("/healthz", headers={"Authorization": ""})).status_code == 200


async def test_a_shop_token_reads_its_shop_and_nothing_else(
    mongo: AsyncMongoClient[Doc], mongodb_url: str, database_name: str
) -> None:
    settings = make_settings(mongodb_url=mongodb_url, mongodb_database=database_name)
    async with serve(create_app(settings), token=SHOP_A_TOKEN) as client:
        assert await list_ids(client, shop_id=SHOP_A) == newest_first(SHOP_A_DOCS)
        other = next(d for d in DOCS if d["shop_id"] != SHOP_A)
        for path, params in (
            ("/api/v1/returns", {"shop_id": other["shop_id"]}),
            ("/api/v1/returns/counts", {"shop_id": other["shop_id"]}),
            (f"/api/v1/returns/{other['shop_id']}/{other['return_id']}", {}),
        ):
            assert (await client.get(path, params=params)).status_code == 403, path
        no_shop = await client.get("/api/v1/returns")
        assert no_shop.status_code == 400
        assert SHOP_A in no_shop.json()["detail"]


# ---------------------------------------------------------------------------- anomaly, search


async def test_anomaly_filter(api: httpx.AsyncClient) -> None:
    flagged = await list_ids(api, shop_id=SHOP_A, anomaly="true")
    assert flagged == newest_first(d for d in SHOP_A_DOCS if d["anomaly"])
    assert len(flagged) == 5
    clean = await list_ids(api, shop_id=SHOP_A, anomaly="false")
    assert clean == newest_first(d for d in SHOP_A_DOCS if not d["anomaly"])
    items = (await api.get("/api/v1/returns", params={"anomaly": "true"})).json()["items"]
    assert items
    assert all(item["anomaly"] is True for item in items)


@pytest.mark.parametrize("shop", [SHOP_A, None])
async def test_search_matches_an_order_id_or_a_return_id_exactly(
    api: httpx.AsyncClient, shop: str | None
) -> None:
    scope = {"shop_id": shop} if shop else {}
    by_order = await list_ids(api, q="ORDER-SHARED", **scope)
    assert by_order == newest_first(d for d in SHOP_A_DOCS if d["order_id"] == "ORDER-SHARED")
    target = SHOP_A_DOCS[8]
    assert await list_ids(api, q=target["return_id"], **scope) == [target["_id"]]
    assert await list_ids(api, q=f"  {target['order_id']} ", **scope) == [target["_id"]]
    assert await list_ids(api, q=target["return_id"][:-1], **scope) == []  # no prefix match
    assert await list_ids(api, q="ORDER-.*", **scope) == []  # no regex


async def test_search_combines_with_filters_and_pages(api: httpx.AsyncClient) -> None:
    ids, pages = await page_through(api, shop_id=SHOP_A, q="ORDER-SHARED", limit=1)
    assert pages == 2
    assert ids == newest_first(
        d for d in SHOP_A_DOCS if d["order_id"] == "ORDER-SHARED"
    )
    shared = [d for d in SHOP_A_DOCS if d["order_id"] == "ORDER-SHARED"]
    status = shared[0]["status"]
    ids = await list_ids(api, shop_id=SHOP_A, q="ORDER-SHARED", status=status)
    assert ids == [d["_id"] for d in shared if d["status"] == status]


async def test_return_id_filter(api: httpx.AsyncClient) -> None:
    target = SHOP_A_DOCS[4]
    assert await list_ids(api, shop_id=SHOP_A, return_id=target["return_id"]) == [target["_id"]]
    assert await list_ids(api, return_id=target["return_id"]) == [target["_id"]]
    assert await list_ids(api, shop_id=SHOP_B, return_id=target["return_id"]) == []


INJECTIONS = ['{"$ne": null}', '{"$gt": ""}', "$where", '{"$regex": ".*"}', ".*", "a' || '1'=='1"]


@pytest.mark.parametrize("value", INJECTIONS)
async def test_operator_like_strings_are_plain_values(api: httpx.AsyncClient, value: str) -> None:
    for param in ("shop_id", "order_id", "return_id", "q"):
        response = await api.get("/api/v1/returns", params={param: value})
        assert response.status_code == 200, (param, response.text)
        assert response.json()["items"] == [], param
    counts = (await api.get("/api/v1/returns/counts", params={"shop_id": value})).json()
    assert counts["counts"]["ALL"] == 0
    rejections = await api.get("/api/v1/rejections", params={"shop_id": value})
    assert rejections.status_code == 200
    assert rejections.json()["items"] == []
    detail = await api.get(f"/api/v1/returns/{value}/{value}")
    assert detail.status_code == 404
    export = await api.get("/api/v1/returns/export.csv", params={"shop_id": value})
    assert export.status_code == 200
    assert export.text.count("\n") == 1


async def test_a_shop_token_cannot_search_into_another_shop(
    mongo: AsyncMongoClient[Doc], mongodb_url: str, database_name: str
) -> None:
    settings = make_settings(mongodb_url=mongodb_url, mongodb_database=database_name)
    other = next(d for d in DOCS if d["shop_id"] == SHOP_B)
    async with serve(create_app(settings), token=SHOP_A_TOKEN) as client:
        response = await client.get(
            "/api/v1/returns", params={"shop_id": SHOP_A, "q": other["return_id"]}
        )
        assert response.json()["items"] == []
        for path in ("/api/v1/returns/export.csv", "/api/v1/rejections"):
            assert (await client.get(path, params={"shop_id": SHOP_B})).status_code == 403
            assert (await client.get(path)).status_code == 400


# ---------------------------------------------------------------------------- CSV export


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def test_export_csv_holds_every_matching_return_with_its_columns(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/api/v1/returns/export.csv", params={"shop_id": SHOP_A})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = csv_rows(response.text)
    assert rows[0] == [
        "order_id", "return_id", "reverse_type", "status", "refund_amount", "currency",
        "reason", "items", "tracking_number", "requested_at", "updated_at",
    ]
    by_id = {d["return_id"]: d for d in SHOP_A_DOCS}
    assert [by_id[r[1]]["_id"] for r in rows[1:]] == newest_first(SHOP_A_DOCS)
    first = by_id[rows[1][1]]
    assert rows[1] == [
        first["order_id"], first["return_id"], first["reverse_type"] or "", first["status"],
        "12.34", "USD", "damaged", "sku-1 x 1", first["details"]["tracking_number"],
        "2024-11-26T05:45:00Z",
        datetime.fromtimestamp(first["update_time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ]


async def test_export_csv_applies_the_list_filters_without_a_page_limit(
    api: httpx.AsyncClient,
) -> None:
    params = {"shop_id": SHOP_A, "reverse_type": "REFUND_ONLY", "status": ["COMPLETE", "CLOSED"]}
    rows = csv_rows((await api.get("/api/v1/returns/export.csv", params=params)).text)
    expected = newest_first(
        d for d in SHOP_A_DOCS
        if d["reverse_type"] == "REFUND_ONLY" and d["status"] in ("COMPLETE", "CLOSED")
    )
    assert expected
    assert [return_key(SHOP_A, r[1]) for r in rows[1:]] == expected
    everything = csv_rows((await api.get("/api/v1/returns/export.csv")).text)
    assert len(everything) == len(DOCS) + 1
    flagged = csv_rows(
        (await api.get("/api/v1/returns/export.csv", params={"anomaly": "true"})).text
    )
    assert len(flagged) == 1 + sum(d["anomaly"] for d in DOCS)


async def test_export_csv_validates_like_the_list(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/returns/export.csv", params={"status": "NOPE"})
    assert response.status_code == 422
    assert "AFTERSALE_APPLYING" in response.json()["message"]
    no_token = await api.get("/api/v1/returns/export.csv", headers={"Authorization": ""})
    assert no_token.status_code == 401


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    row = csv_row({"order_id": "=HYPERLINK(1)", "return_id": "+1", "details": {
        "reason": "@SUM(A1)", "refund": {"amount": "5.10", "currency": "USD"}}})
    assert row[0] == "'=HYPERLINK(1)"
    assert row[1] == "'+1"
    assert row[6] == "'@SUM(A1)"
    assert row[4] == "5.10"


# ---------------------------------------------------------------------------- rejections


def newest_rejections(docs: Iterable[Doc]) -> list[str]:
    ordered = sorted(docs, key=lambda d: (d["rejected_at"], d["_id"]), reverse=True)
    return [d["_id"] for d in ordered]


async def rejection_ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(50):
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/v1/rejections", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        ids += [item["rejection_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
    raise AssertionError("pagination does not end")


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
async def test_rejections_newest_first_paged_without_skips_or_repeats(
    api: httpx.AsyncClient, limit: int
) -> None:
    assert await rejection_ids(api, limit=limit) == newest_rejections(REJECTION_DOCS)
    shop_a = [d for d in REJECTION_DOCS if d["shop_id"] == SHOP_A]
    assert await rejection_ids(api, shop_id=SHOP_A, limit=limit) == newest_rejections(shop_a)


@pytest.mark.parametrize("reason", list(RejectionReason))
async def test_rejections_filter_by_reason(
    api: httpx.AsyncClient, reason: RejectionReason
) -> None:
    ids = await rejection_ids(api, shop_id=SHOP_A, reason=reason.value, limit=2)
    expected = [d for d in REJECTION_DOCS if d["shop_id"] == SHOP_A and d["reason"] == reason]
    assert expected
    assert ids == newest_rejections(expected)


async def test_a_rejection_is_the_recorded_event(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/v1/rejections", params={"shop_id": SHOP_B, "limit": 1})).json()
    item = body["items"][0]
    stored = next(d for d in REJECTION_DOCS if d["_id"] == item["rejection_id"])
    assert item == {k: v for k, v in stored.items() if k != "_id"}


async def test_rejections_validate_their_parameters(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/rejections", params={"reason": "bad_luck"})
    assert response.status_code == 422
    assert all(r.value in response.json()["message"] for r in RejectionReason)
    for limit in (0, 201):
        assert (await api.get("/api/v1/rejections", params={"limit": limit})).status_code == 422
    returns_page = (await api.get("/api/v1/returns", params={"limit": 1})).json()
    for cursor in ("garbage!", returns_page["next_cursor"]):  # a returns cursor is not one
        response = await api.get("/api/v1/rejections", params={"cursor": cursor})
        assert response.status_code == 400
        assert "invalid cursor" in response.json()["detail"]
    assert (
        await api.get("/api/v1/rejections", headers={"Authorization": "Bearer x"})
    ).status_code == 401


async def test_every_rejections_index_exists_after_startup(
    api: httpx.AsyncClient, mongo: AsyncMongoClient[Doc], database_name: str
) -> None:
    collection = mongo[database_name][REJECTIONS_COLLECTION]
    indexes = {ix["name"]: list(ix["key"].items()) async for ix in await collection.list_indexes()}
    for keys, name in REJECTIONS_INDEXES:
        assert name in indexes, f"index {name} missing: {sorted(indexes)}"
        assert [(k, int(v)) for k, v in indexes[name]] == keys


# ---------------------------------------------------------------------------- dashboard


async def test_meta_tabs_are_the_contract_tabs_in_order(api: httpx.AsyncClient) -> None:
    body = (await api.get("/api/v1/meta/tabs", headers={"Authorization": ""})).json()
    assert body["tabs"] == [{"key": "ALL", "label": "All"}] + [
        {"key": s.value, "label": label} for s, label in STATUS_TABS
    ]
    assert [t["key"] for t in body["reverse_types"]] == [t.value for t in ReverseType]


async def test_the_dashboard_and_its_assets_are_served(api: httpx.AsyncClient) -> None:
    page = await api.get("/", params={"token": "anything"}, headers={"Authorization": ""})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="tabs"' in page.text
    assert "/static/dashboard.js" in page.text
    for asset, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        response = await api.get(f"/static/{asset}", headers={"Authorization": ""})
        assert response.status_code == 200
        assert kind in response.headers["content-type"]
    assert (await api.get("/static/../api.py")).status_code == 404


async def test_openapi_documents_errors_and_the_bearer_scheme(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path in (
        "/api/v1/returns", "/api/v1/returns/counts", "/api/v1/returns/export.csv",
        "/api/v1/rejections", "/api/v1/returns/{shop_id}/{return_id}",
    ):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert {"200", "401", "403", "422", "503"} <= set(operation["responses"]), path
    export = spec["paths"]["/api/v1/returns/export.csv"]["get"]["responses"]["200"]
    assert list(export["content"]) == ["text/csv"]
    assert {"RejectionsPage", "RejectionView", "ValidationFailure", "DashboardMeta"} <= set(
        spec["components"]["schemas"]
    )
    failure = spec["paths"]["/api/v1/returns"]["get"]["responses"]["422"]
    assert failure["content"]["application/json"]["schema"]["$ref"].endswith("ValidationFailure")


@pytest.mark.parametrize("param", ["shop_id", "order_id", "return_id", "q"])
async def test_control_characters_are_422_not_a_database_error(
    api: httpx.AsyncClient, param: str
) -> None:
    response = await api.get("/api/v1/returns", params={param: "a\x00b"})
    assert response.status_code == 422, response.text
    assert param in response.json()["message"]
    assert (await api.get(f"/api/v1/returns/{SHOP_A}/a%00b")).status_code == 422


async def test_export_of_a_shop_with_a_non_ascii_id_names_its_file_in_ascii(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/api/v1/returns/export.csv", params={"shop_id": "店铺-𠠖-7"})
    assert response.status_code == 200, response.text
    assert 'filename="returns---7-' in response.headers["content-disposition"]
