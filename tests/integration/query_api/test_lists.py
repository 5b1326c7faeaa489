"""The query API against a real MongoDB-compatible server (FerretDB), in-process over ASGI:
lists, filters, paging, counts, details, search, tokens and errors."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts.decisions import allowed_decisions
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    DEFAULT_RETURNS_COLLECTION,
    META_COLLECTION,
    RETURNS_INDEXES,
    ReturnState,
    counts_collection,
)
from contracts.statuses import ReturnStatus, ReverseType
from devinfra.proc import free_port
from query_api.api import create_app
from tests.integration.query_api.data import (
    DOCS,
    SHOP_A,
    SHOP_A_DOCS,
    SHOP_A_TOKEN,
    SHOP_B,
    STATUSES,
    T0,
    Doc,
    counts_documents,
    list_ids,
    make_return,
    make_settings,
    newest_first,
    serve,
)

pytestmark = pytest.mark.integration

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
