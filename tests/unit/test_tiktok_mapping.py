"""Mapping of sync records of both API generations to ReturnEvents (or Rejected)."""

import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from contracts.messages import EventSource, Money, RejectionReason, ReturnEvent, ReturnItem
from contracts.statuses import ReturnStatus, ReverseType
from ingestor.rejections import Rejected, sync_rejection
from ingestor.tiktok_mapping import (
    map_202309_record,
    map_legacy_record,
    record_update_time,
)
from tiktok_sim.store import SimStore, generate_returns, legacy_record, v202309_record

SHOP = "7494560109732840000"


def legacy() -> dict[str, Any]:
    return {
        "reverse_order_id": "2100345678901234",
        "order_id": "576461413038785752",
        "refund_total": "19.99",
        "currency": "USD",
        "reverse_type": 3,
        "return_reason": "Item arrived damaged",
        "return_item_list": [
            {"sku_id": "1729", "seller_sku": "SKU-1", "return_product_name": "Earbuds",
             "sku_name": "Black", "return_quantity": 2,
             "product_images": ["https://img/1.jpeg", "https://img/2.jpeg"]},
        ],
        "reverse_status_value": 4,
        "reverse_request_time": 1732600000,
        "reverse_update_time": 1732679990,
        "return_tracking_id": "TT123456789",
        "reverse_record_list": [
            {"description": "shipped", "update_time": 1732679990, "reason_text": ""},
            {"description": "applied", "update_time": 1732600000, "reason_text": "Cracked case"},
        ],
    }


def v202309() -> dict[str, Any]:
    line = {"sku_id": "1729", "seller_sku": "SKU-1", "product_name": "Earbuds",
            "sku_name": "Black", "product_image": {"url": "https://img/1.jpeg"},
            "refund_amount": {"currency": "GBP", "refund_total": "0.10"}}
    return {
        "return_id": "4035318504086000000",
        "order_id": "576461413038785752",
        "return_type": "REFUND",
        "return_status": "AWAITING_BUYER_RESPONSE",
        "create_time": 1732600000,
        "update_time": 1732679990,
        "return_reason": "ecom_order_delivered_refund_reason_missing_parts",
        "return_reason_text": "Parts missing",
        "refund_amount": {"currency": "GBP", "refund_total": "0.30", "refund_subtotal": "0.30"},
        "return_line_items": [line, dict(line), {**line, "sku_id": "99", "sku_name": "White"}],
        "role": "BUYER",
    }


def test_legacy_record_maps_with_all_details() -> None:
    event = map_legacy_record(legacy(), SHOP)
    assert isinstance(event, ReturnEvent)
    assert (event.shop_id, event.return_id, event.order_id) == (
        SHOP, "2100345678901234", "576461413038785752")
    assert event.status is ReturnStatus.AFTERSALE_BUYER_SHIPPED
    assert event.reverse_type is ReverseType.RETURN_AND_REFUND
    assert event.update_time == 1732679990
    assert event.source is EventSource.SYNC_LEGACY
    d = event.details
    assert d.refund == Money(amount=Decimal("19.99"), currency="USD")
    assert isinstance(d.refund.amount, Decimal)
    assert d.reason == "Item arrived damaged"
    assert d.reason_text == "Cracked case"  # the earliest record's reason text
    assert d.tracking_number == "TT123456789"
    assert d.request_time == 1732600000
    assert d.items == (ReturnItem(sku_id="1729", seller_sku="SKU-1", product_name="Earbuds",
                                  sku_name="Black", quantity=2, image_url="https://img/1.jpeg"),)


def test_202309_record_maps_with_all_details_and_folds_unit_lines_into_quantities() -> None:
    event = map_202309_record(v202309(), SHOP)
    assert isinstance(event, ReturnEvent)
    assert event.return_id == "4035318504086000000"
    assert event.status is ReturnStatus.AFTERSALE_APPLYING
    assert event.reverse_type is ReverseType.REFUND_ONLY
    assert event.source is EventSource.SYNC_202309
    assert event.actor == "BUYER"
    d = event.details
    assert d.refund == Money(amount=Decimal("0.30"), currency="GBP")
    assert str(d.refund.amount) == "0.30"  # exact, not 0.30000000000000004
    assert (d.reason, d.reason_text) == (
        "ecom_order_delivered_refund_reason_missing_parts", "Parts missing")
    assert d.request_time == 1732600000
    assert d.tracking_number is None
    assert d.items is not None
    assert [(i.sku_id, i.sku_name, i.quantity, i.image_url) for i in d.items] == [
        ("1729", "Black", 2, "https://img/1.jpeg"), ("99", "White", 1, "https://img/1.jpeg")]


def test_legacy_closed_status_maps() -> None:
    event = map_legacy_record({**legacy(), "reverse_status_value": 99}, SHOP)
    assert isinstance(event, ReturnEvent)
    assert event.status is ReturnStatus.CLOSED


def test_legacy_cancel_reverse_type_is_rejected_as_unsupported_type() -> None:
    result = map_legacy_record({**legacy(), "reverse_type": 1}, SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.UNSUPPORTED_TYPE
    assert "CANCEL" in result.detail
    assert result.return_id == "2100345678901234"
    assert result.raw["reverse_type"] == 1


def test_replacement_is_rejected_as_unsupported_type_with_the_raw_record() -> None:
    record = {**v202309(), "return_type": "REPLACEMENT",
              "return_status": "REPLACEMENT_REQUEST_PENDING"}
    result = map_202309_record(record, SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.UNSUPPORTED_TYPE
    assert result.raw == record
    assert result.source is EventSource.SYNC_202309


@pytest.mark.parametrize(
    ("mapper", "record"),
    [
        (map_legacy_record, {**legacy(), "reverse_status_value": 7}),
        (map_legacy_record, {**legacy(), "reverse_status_value": None}),
        (map_202309_record, {**v202309(), "return_status": "RETURN_OR_REFUND_REQUEST_CLOSED"}),
    ],
)
def test_unknown_status_is_rejected_not_guessed(mapper: Any, record: dict[str, Any]) -> None:
    result = mapper(record, SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.UNKNOWN_STATUS


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({**legacy(), "refund_total": "12,50"}, "refund_total"),
        ({**legacy(), "refund_total": 12.5}, "float"),
        ({**legacy(), "currency": None}, "currency"),
        ({**legacy(), "reverse_order_id": ""}, "reverse_order_id"),
        ({**legacy(), "reverse_update_time": "yesterday"}, "reverse_update_time"),
        ({**legacy(), "return_item_list": "nope"}, "return_item_list"),
    ],
)
def test_malformed_legacy_record_is_rejected_as_invalid_event(
    record: dict[str, Any], needle: str
) -> None:
    result = map_legacy_record(record, SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.INVALID_EVENT
    assert needle in result.detail


def test_negative_quantity_is_rejected_through_contract_validation() -> None:
    record = legacy()
    record["return_item_list"][0]["return_quantity"] = -1
    result = map_legacy_record(record, SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.INVALID_EVENT


def with_item(record: dict[str, Any], list_key: str, **changes: Any) -> dict[str, Any]:
    items = [{**record[list_key][0], **changes}, *record[list_key][1:]]
    return {**record, list_key: items}


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({**legacy(), "reverse_update_time": 10**19}, "reverse_update_time"),
        ({**legacy(), "reverse_update_time": 1_000}, "reverse_update_time"),
        ({**legacy(), "reverse_request_time": str(2**64)}, "reverse_request_time"),
        ({**legacy(), "reverse_request_time": "9" * 5000}, "reverse_request_time"),
        ({**legacy(), "reverse_update_time": "17326799²"}, "reverse_update_time"),
        ({**legacy(), "reverse_request_time": int(time.time()) + 3 * 86_400},
         "reverse_request_time"),
        ({**legacy(), "refund_total": "NaN"}, "refund_total"),
        ({**legacy(), "refund_total": "Infinity"}, "refund_total"),
        ({**legacy(), "refund_total": "1e999999"}, "refund_total"),
        ({**legacy(), "refund_total": "1000000000000"}, "refund_total"),
        ({**legacy(), "refund_total": "-5"}, "refund_total"),
        ({**legacy(), "currency": "US Dollar"}, "currency"),
        ({**legacy(), "reverse_order_id": "2100\x00345"}, "return_id"),
        ({**legacy(), "order_id": "5" * 129}, "order_id"),
        ({**legacy(), "return_tracking_id": "TT\n1"}, "tracking_number"),
        ({**legacy(), "return_reason": "r" * 513}, "reason"),
        (with_item(legacy(), "return_item_list", return_quantity=2**63), "return_quantity"),
        (with_item(legacy(), "return_item_list", sku_id="17\x1b29"), "sku_id"),
        (with_item(legacy(), "return_item_list", return_product_name="p" * 513),
         "product_name"),
    ],
)
def test_legacy_record_with_an_impossible_value_is_rejected_naming_it(
    record: dict[str, Any], needle: str
) -> None:
    result = map_legacy_record(record, SHOP)
    assert isinstance(result, Rejected), result
    assert result.reason is RejectionReason.INVALID_EVENT
    assert needle in result.detail
    assert result.raw == record  # kept as received, for the rejected topic


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({**v202309(), "update_time": 10**19}, "update_time"),
        ({**v202309(), "create_time": -1}, "create_time"),
        ({**v202309(), "refund_amount": {"currency": "GBP", "refund_total": "sNaN"}},
         "refund_amount.refund_total"),
        ({**v202309(), "return_reason_text": "x" * 4097}, "reason_text"),
        ({**v202309(), "return_id": "4" * 129}, "return_id"),
        (with_item(v202309(), "return_line_items", quantity=2**63), "quantity"),
        (with_item(v202309(), "return_line_items", product_image={"url": "https://i\x00/1"}),
         "image_url"),
    ],
)
def test_202309_record_with_an_impossible_value_is_rejected_naming_it(
    record: dict[str, Any], needle: str
) -> None:
    result = map_202309_record(record, SHOP)
    assert isinstance(result, Rejected), result
    assert result.reason is RejectionReason.INVALID_EVENT
    assert needle in result.detail


def test_a_rejection_detail_shows_a_huge_value_shortened() -> None:
    result = map_legacy_record({**legacy(), "reverse_update_time": 10**4000}, SHOP)
    assert isinstance(result, Rejected)
    assert len(result.detail) < 300


def test_impossible_records_go_to_the_rejected_topic_named_by_shop_and_record() -> None:
    result = map_202309_record({**v202309(), "update_time": 10**19}, SHOP)
    assert isinstance(result, Rejected)
    rejection = sync_rejection(result, datetime.now(UTC))
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert rejection.stage == "ingestor"
    assert (rejection.shop_id, rejection.return_id) == (SHOP, "4035318504086000000")
    assert rejection.detail.startswith("sync_202309: update_time ")
    assert str(10**19) in (rejection.raw or "")


def test_a_rejection_names_no_return_whose_id_is_impossible() -> None:
    result = map_legacy_record({**legacy(), "reverse_order_id": "r\x00"}, SHOP)
    assert isinstance(result, Rejected)
    assert sync_rejection(result, datetime.now(UTC)).return_id is None


def test_a_record_that_is_not_an_object_is_rejected_as_undecodable() -> None:
    result = map_202309_record(["not", "a", "record"], SHOP)
    assert isinstance(result, Rejected)
    assert result.reason is RejectionReason.UNDECODABLE


def test_empty_refund_means_amount_unknown() -> None:
    event = map_legacy_record({**legacy(), "refund_total": ""}, SHOP)
    assert isinstance(event, ReturnEvent)
    assert event.details.refund is None


def test_record_update_time_reads_both_generations() -> None:
    assert record_update_time(legacy()) == 1732679990
    assert record_update_time(v202309()) == 1732679990
    assert record_update_time({"update_time": "x"}) is None


def test_record_update_time_ignores_impossible_times() -> None:
    assert record_update_time({"update_time": 10**19}) is None
    assert record_update_time({"reverse_update_time": 5, "update_time": 1732679990}) == 1732679990


def test_simulator_renderings_of_one_return_map_to_the_same_details_in_both_generations() -> None:
    store = SimStore()
    rng = random.Random(7)
    # 202309 shops never hold CLOSED (no 202309 name), so both generations can render them.
    for ret in generate_returns(store, rng, "shop", 60, "202309", now=1_750_000_000):
        ret_as_202309 = map_202309_record(v202309_record(ret), SHOP)
        ret_as_legacy = map_legacy_record(legacy_record(ret), SHOP)
        assert isinstance(ret_as_202309, ReturnEvent)
        assert isinstance(ret_as_legacy, ReturnEvent)
        for field in ("status", "update_time", "reverse_type", "order_id"):
            assert getattr(ret_as_202309, field) == getattr(ret_as_legacy, field)
        a, b = ret_as_202309.details, ret_as_legacy.details
        assert (a.refund, a.items, a.tracking_number, a.request_time, a.reason_text) == (
            b.refund, b.items, b.tracking_number, b.request_time, b.reason_text)


def test_a_202309_record_keeps_what_tiktok_waits_for_from_the_seller_and_by_when() -> None:
    waiting = {**v202309(), "seller_next_action_response": [
        {"action": "SELLER_RESPOND_REFUND", "deadline": 1732859990}]}
    event = map_202309_record(waiting, SHOP)
    assert isinstance(event, ReturnEvent)
    assert [(a.action, a.deadline) for a in event.details.next_actions or ()] == [
        ("SELLER_RESPOND_REFUND", 1732859990)]


def test_a_202309_record_without_a_seller_action_clears_the_deadline_a_legacy_one_knows_none(
) -> None:
    event = map_202309_record(v202309(), SHOP)
    assert isinstance(event, ReturnEvent)
    assert event.details.next_actions == ()
    legacy_event = map_legacy_record(legacy(), SHOP)
    assert isinstance(legacy_event, ReturnEvent)
    assert legacy_event.details.next_actions is None


def test_an_impossible_deadline_rejects_the_record_naming_it() -> None:
    bad = {**v202309(), "seller_next_action_response": [
        {"action": "SELLER_RESPOND_REFUND", "deadline": 10**12}]}
    rejected = map_202309_record(bad, SHOP)
    assert isinstance(rejected, Rejected)
    assert rejected.reason is RejectionReason.INVALID_EVENT
    assert "seller_next_action_response.deadline" in rejected.detail
