"""The query API against FerretDB, in-process over ASGI: the CSV export, the rejections, the
meta tabs, the dashboard's files and the OpenAPI document."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts.messages import (
    RejectionReason,
    return_key,
)
from contracts.read_model import (
    REJECTIONS_COLLECTION,
    REJECTIONS_INDEXES,
)
from contracts.statuses import STATUS_TABS, ReverseType
from query_api.export import csv_row
from tests.integration.query_api.data import (
    DOCS,
    REJECTION_DOCS,
    SHOP_A,
    SHOP_A_DOCS,
    SHOP_B,
    Doc,
    newest_first,
)

pytestmark = pytest.mark.integration

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
