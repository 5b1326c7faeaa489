"""What the insights take in: stored documents made into rows, and the window and time zone
of a request (422 when they make no sense)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.exceptions import RequestValidationError

from contracts.statuses import ReturnStatus
from query_api.insights.aggregate import Refund, Sku
from query_api.insights.reader import history_row, return_row
from query_api.routes.insights import window_or_422, zone_or_422

UTC_ZONE = zone_or_422("UTC")


def test_a_returns_document_becomes_a_row_with_its_distinct_skus_and_decimal_refund() -> None:
    row = return_row({
        "_id": "shop:r1", "status": "COMPLETE", "anomaly": True,
        "details": {
            "request_time": 1_740_000_000,
            "refund": {"amount": "19.90", "currency": "MYR"},
            "reason": "damaged", "reason_text": "Arrived damaged",
            "items": [
                {"sku_id": "111", "seller_sku": "MUG-1", "product_name": "Mug", "sku_name": "Red"},
                {"sku_id": "111", "seller_sku": "MUG-1"},  # the same SKU again
                {"seller_sku": "CUP-9"},  # no TikTok id: keyed by the seller's SKU
                {"product_name": "unnamed"},  # neither: not a SKU
            ],
        },
    })
    assert (row.key, row.status, row.request_time, row.anomaly) == (
        "shop:r1", ReturnStatus.COMPLETE, 1_740_000_000, True)
    assert row.refund == Refund(Decimal("19.90"), "MYR")
    assert row.skus == (Sku("111", "MUG-1 · Mug · Red"), Sku("CUP-9", "CUP-9"))
    assert (row.reason, row.reason_text) == ("damaged", "Arrived damaged")


def test_a_document_without_details_is_a_row_with_nothing_known() -> None:
    row = return_row({"_id": "shop:r2", "status": "AFTERSALE_APPLYING"})
    assert (row.request_time, row.refund, row.reason, row.skus, row.anomaly) == (
        None, None, None, (), False)


@pytest.mark.parametrize("refund", [{"amount": "NaN", "currency": "USD"},
                                    {"amount": "x", "currency": "USD"},
                                    {"amount": "1.00"}, "1.00"])
def test_an_unreadable_refund_is_no_refund(refund: object) -> None:
    assert return_row({"_id": "k", "status": "COMPLETE", "details": {"refund": refund}}).refund \
        is None


@pytest.mark.parametrize("doc", [
    {"_id": "k", "status": "NOPE"},
    {"_id": "k"},
    {"_id": "k", "status": "COMPLETE", "details": {"request_time": "yesterday"}},
])
def test_an_unreadable_returns_document_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises((ValueError, KeyError)):
        return_row(doc)


def test_a_history_document_becomes_a_row_with_its_inferred_statuses() -> None:
    row = history_row({"return_key": "shop:r1", "update_time": 5, "rank": 8,
                       "event": {"status": "COMPLETE"}, "inferred": ["AFTERSALE_SUCCESS"]})
    assert (row.return_key, row.update_time, row.rank, row.status, row.inferred) == (
        "shop:r1", 5, 8, ReturnStatus.COMPLETE, (ReturnStatus.AFTERSALE_SUCCESS,))
    with pytest.raises(ValueError, match="not a history document"):
        history_row({"return_key": "shop:r1", "update_time": 5})


def test_an_unknown_time_zone_is_refused_naming_the_parameter() -> None:
    for name in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe", ""):
        with pytest.raises(RequestValidationError) as refused:
            zone_or_422(name)
        (error,) = refused.value.errors()
        assert error["loc"] == ("query", "tz")
        assert "IANA time zone" in error["msg"]
    assert zone_or_422("Europe/London").key == "Europe/London"


def test_the_window_defaults_to_the_30_days_before_now_and_reads_naive_times_as_utc() -> None:
    now = datetime(2025, 3, 31, 12, tzinfo=UTC)
    window = window_or_422(None, None, UTC_ZONE, now=now)
    assert (window.start, window.end) == (int((now - timedelta(days=30)).timestamp()),
                                          int(now.timestamp()))
    naive = window_or_422(datetime(2025, 3, 1), datetime(2025, 3, 2), UTC_ZONE)
    assert naive.start == int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())
    offset = window_or_422(datetime.fromisoformat("2025-03-01T08:00:00+08:00"), None,
                           UTC_ZONE, now=now)
    assert offset.start == naive.start


@pytest.mark.parametrize(("start", "end", "field"), [
    ("2025-03-02", "2025-03-01", "from"),  # backwards
    ("2025-03-01", "2025-03-01", "from"),  # empty
    ("2024-01-01", "2025-03-01", "to"),  # over 400 days
    ("1970-01-01", "1970-01-02", "from"),  # before 2000
    ("2150-01-01", "2150-01-02", "from"),  # after 2100
])
def test_a_window_that_makes_no_sense_is_refused(start: str, end: str, field: str) -> None:
    with pytest.raises(RequestValidationError) as refused:
        window_or_422(datetime.fromisoformat(start), datetime.fromisoformat(end), UTC_ZONE)
    assert refused.value.errors()[0]["loc"] == ("query", field)
