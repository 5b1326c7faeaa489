"""Pure query building of the query API: filters, sort, keyset cursors, counts."""

from __future__ import annotations

import base64
import json

import pytest

from contracts.messages import RejectionReason
from contracts.statuses import STATUS_TABS, ReturnStatus, ReverseType
from query_api.export import csv_lines, csv_row
from query_api.queries import (
    LIST_SORT,
    BadCursor,
    Cursor,
    ListParams,
    RejectionCursor,
    RejectionParams,
    build_count_pipeline,
    build_filter,
    build_match,
    build_rejection_filter,
    build_sort,
    counts_by_status,
    decode_cursor,
    decode_rejection_cursor,
    encode_cursor,
    encode_rejection_cursor,
    next_cursor,
    next_rejection_cursor,
)


def test_no_params_select_every_return() -> None:
    assert build_filter(ListParams()) == {}


def test_shop_id_is_an_equality_filter() -> None:
    assert build_filter(ListParams(shop_id="shop-1")) == {"shop_id": "shop-1"}


def test_single_status_uses_plain_equality_not_in() -> None:
    query = build_filter(ListParams(statuses=(ReturnStatus.COMPLETE,)))
    assert query == {"status": "COMPLETE"}


def test_repeated_single_status_still_uses_equality() -> None:
    query = build_filter(ListParams(statuses=(ReturnStatus.CLOSED, ReturnStatus.CLOSED)))
    assert query == {"status": "CLOSED"}


def test_several_statuses_use_in_without_duplicates() -> None:
    params = ListParams(
        statuses=(ReturnStatus.AFTERSALE_APPLYING, ReturnStatus.COMPLETE, ReturnStatus.COMPLETE)
    )
    assert build_filter(params) == {"status": {"$in": ["AFTERSALE_APPLYING", "COMPLETE"]}}


def test_reverse_type_is_an_equality_filter() -> None:
    query = build_filter(ListParams(reverse_type=ReverseType.REFUND_ONLY))
    assert query == {"reverse_type": "REFUND_ONLY"}


def test_order_id_is_an_equality_filter() -> None:
    assert build_filter(ListParams(order_id="576461413038785752")) == {
        "order_id": "576461413038785752"
    }


def test_update_time_range_is_from_inclusive_to_exclusive() -> None:
    assert build_filter(ListParams(updated_from=100, updated_to=200)) == {
        "update_time": {"$gte": 100, "$lt": 200}
    }
    assert build_filter(ListParams(updated_from=100)) == {"update_time": {"$gte": 100}}
    assert build_filter(ListParams(updated_to=200)) == {"update_time": {"$lt": 200}}


def test_cursor_continues_strictly_after_the_last_item_in_sort_order() -> None:
    query = build_filter(ListParams(shop_id="s", after=Cursor(update_time=50, id="s:r9")))
    assert query == {
        "shop_id": "s",
        "$or": [{"update_time": {"$lt": 50}}, {"update_time": 50, "_id": {"$lt": "s:r9"}}],
    }


def test_cursor_combines_with_a_time_range() -> None:
    query = build_filter(ListParams(updated_from=10, after=Cursor(update_time=50, id="x")))
    assert query["update_time"] == {"$gte": 10}
    assert "$or" in query


def test_operator_looking_strings_stay_plain_values() -> None:
    query = build_filter(ListParams(shop_id="$where", order_id='{"$ne": null}'))
    assert query == {"shop_id": "$where", "order_id": '{"$ne": null}'}


def test_sort_is_newest_update_first_then_id_descending() -> None:
    assert build_sort() == [("update_time", -1), ("_id", -1)]
    assert list(LIST_SORT) == build_sort()


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_limit_outside_1_to_200_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be between 1 and 200"):
        ListParams(limit=limit)


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor(update_time=1732679990, id="7494560109732840000:4035318504086000000"),
        Cursor(update_time=0, id=""),
        Cursor(update_time=5, id="shop:ünïcode/+?&="),
    ],
)
def test_cursor_round_trips(cursor: Cursor) -> None:
    token = encode_cursor(cursor)
    assert decode_cursor(token) == cursor


def test_cursor_is_url_safe_without_padding() -> None:
    token = encode_cursor(Cursor(update_time=1, id="a?b/c+d"))
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64!!",
        "%%%",
        _b64(b"not json"),
        _b64(b'{"update_time": 1, "_id": "x"}'),
        _b64(b"[1]"),
        _b64(b'[1, "a", 3]'),
        _b64(b'["1", "a"]'),
        _b64(b'[1.5, "a"]'),
        _b64(b'[true, "a"]'),
        _b64(b"[1, 2]"),
        _b64(b'[1, {"$gt": ""}]'),
        _b64(json.dumps([1, "x" * 2000]).encode()),
        _b64(b"\xff\xfe"),
    ],
)
def test_bad_cursor_is_refused(token: str) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(token)


def test_next_cursor_points_at_the_last_shown_item_when_more_exist() -> None:
    docs = [
        {"_id": "s:3", "update_time": 30},
        {"_id": "s:2", "update_time": 20},
        {"_id": "s:1", "update_time": 10},  # look-ahead
    ]
    token = next_cursor(docs, limit=2)
    assert token is not None
    assert decode_cursor(token) == Cursor(update_time=20, id="s:2")


def test_no_next_cursor_on_the_last_page() -> None:
    docs = [{"_id": "s:3", "update_time": 30}, {"_id": "s:2", "update_time": 20}]
    assert next_cursor(docs, limit=2) is None
    assert next_cursor([], limit=2) is None


def test_count_pipeline_matches_the_shop_then_groups_by_status() -> None:
    assert build_count_pipeline("s") == [
        {"$match": {"shop_id": "s"}},
        {"$group": {"_id": "$status", "n": {"$sum": 1}}},
    ]
    assert build_count_pipeline(None) == [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]


def test_counts_hold_every_status_zero_when_absent_and_all() -> None:
    counts = counts_by_status([{"_id": "COMPLETE", "n": 3}, {"_id": "CLOSED", "n": 2}])
    assert counts["ALL"] == 5
    assert counts["COMPLETE"] == 3
    assert counts["CLOSED"] == 2
    assert set(counts) == {"ALL", *(s.value for s in ReturnStatus)}
    assert all(counts[s.value] == 0 for s in ReturnStatus if s.value not in {"COMPLETE", "CLOSED"})


def test_counts_follow_the_dashboard_tab_order() -> None:
    counts = counts_by_status([])
    assert list(counts) == ["ALL", *(status.value for status, _ in STATUS_TABS)]


def test_all_counts_returns_with_a_status_this_version_does_not_know() -> None:
    counts = counts_by_status([{"_id": "SOMETHING_NEW", "n": 4}, {"_id": "COMPLETE", "n": 1}])
    assert counts["ALL"] == 5
    assert "SOMETHING_NEW" not in counts


# ---------------------------------------------------------------------------- search, anomaly


def test_anomaly_is_an_equality_filter() -> None:
    assert build_filter(ListParams(shop_id="s", anomaly=True)) == {"shop_id": "s", "anomaly": True}
    assert build_filter(ListParams(anomaly=False)) == {"anomaly": False}


def test_search_is_two_exact_alternatives_never_a_regex() -> None:
    assert build_filter(ListParams(shop_id="s", search="123")) == {
        "shop_id": "s",
        "$or": [{"order_id": "123"}, {"_id": "s:123"}],
    }
    assert build_filter(ListParams(search="123")) == {
        "$or": [{"order_id": "123"}, {"return_id": "123"}]
    }


def test_return_id_uses_the_primary_key_when_the_shop_is_known() -> None:
    assert build_filter(ListParams(shop_id="s", return_id="r")) == {"shop_id": "s", "_id": "s:r"}
    assert build_filter(ListParams(return_id="r")) == {"return_id": "r"}


def test_search_and_cursor_both_hold() -> None:
    query = build_filter(ListParams(search="q", after=Cursor(update_time=5, id="s:r")))
    assert "$or" not in query
    assert query["$and"] == [
        {"$or": [{"order_id": "q"}, {"return_id": "q"}]},
        {"$or": [{"update_time": {"$lt": 5}}, {"update_time": 5, "_id": {"$lt": "s:r"}}]},
    ]
    assert build_match(ListParams(search="q", after=Cursor(update_time=5, id="x"))) == {
        "$or": [{"order_id": "q"}, {"return_id": "q"}]
    }


def test_operator_strings_stay_values() -> None:
    injected = '{"$ne": null}'
    query = build_filter(ListParams(shop_id=injected, order_id="$where", search="$gt"))
    assert query["shop_id"] == injected
    assert query["order_id"] == "$where"
    assert all(not key.startswith("$") or key == "$or" for key in query)


# ---------------------------------------------------------------------------- rejections


def test_rejection_cursor_round_trips_and_is_not_a_returns_cursor() -> None:
    cursor = RejectionCursor(rejected_at="2024-11-27T04:00:00Z", id="rej-1")
    token = encode_rejection_cursor(cursor)
    assert decode_rejection_cursor(token) == cursor
    with pytest.raises(BadCursor):
        decode_rejection_cursor(encode_cursor(Cursor(update_time=1, id="x")))
    with pytest.raises(BadCursor):
        decode_cursor(token)


def test_rejection_filter_and_next_cursor() -> None:
    after = RejectionCursor(rejected_at="2024-11-27T04:00:00Z", id="rej-9")
    params = RejectionParams(shop_id="s", reason=RejectionReason.UNKNOWN_STATUS, after=after)
    assert build_rejection_filter(params) == {
        "shop_id": "s",
        "reason": "unknown_status",
        "$or": [
            {"rejected_at": {"$lt": "2024-11-27T04:00:00Z"}},
            {"rejected_at": "2024-11-27T04:00:00Z", "_id": {"$lt": "rej-9"}},
        ],
    }
    docs = [{"_id": f"r{i}", "rejected_at": f"t{i}"} for i in range(3)]
    assert next_rejection_cursor(docs, 3) is None
    token = next_rejection_cursor(docs, 2)
    assert token is not None
    assert decode_rejection_cursor(token) == RejectionCursor(rejected_at="t1", id="r1")


# ---------------------------------------------------------------------------- CSV


def test_csv_row_formats_money_items_and_times() -> None:
    doc = {
        "order_id": "o1", "return_id": "r1", "reverse_type": None, "status": "COMPLETE",
        "update_time": 1_732_680_000,
        "details": {
            "refund": {"amount": "0.10", "currency": "EUR"}, "reason": "damaged",
            "items": [{"seller_sku": "A", "sku_id": "1", "quantity": 2}, {"sku_id": "2"}],
            "tracking_number": None, "request_time": None,
        },
    }
    assert csv_row(doc) == [
        "o1", "r1", "", "COMPLETE", "0.10", "EUR", "damaged", "A x 2; 2 x ?", "", "",
        "2024-11-27T04:00:00Z",
    ]
    assert csv_lines([["a,b", 'q"t']]) == '"a,b","q""t"\r\n'
