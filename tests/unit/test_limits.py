"""The bounds of contracts.limits, each kind on both sides of each bound, and the messages that
use them: an impossible value is refused by `ReturnEvent` wherever it is validated."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts.limits import (
    EARLIEST_TIME,
    FUTURE_SLACK_S,
    INT64_MAX,
    MAX_ID_LENGTH,
    MAX_ITEMS,
    MAX_NAME_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URL_LENGTH,
    Amount,
    Count,
    CurrencyCode,
    Id,
    Int64,
    Name,
    Text,
    UnixTime,
    Url,
)
from contracts.messages import EventSource, ReturnEvent, SyncCommand
from contracts.statuses import ReturnStatus


def accepts(kind: Any, value: Any) -> bool:
    try:
        TypeAdapter(kind).validate_python(value)
    except ValidationError:
        return False
    return True


def test_earliest_time_is_2016_01_01_utc() -> None:
    assert EARLIEST_TIME == 1_451_606_400


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (-1, False)])
def test_a_time_before_2016_is_refused(offset: int, ok: bool) -> None:
    assert accepts(UnixTime, EARLIEST_TIME + offset) is ok


def test_a_time_up_to_one_day_ahead_is_accepted_and_later_refused() -> None:
    now = int(time.time())
    assert accepts(UnixTime, now + FUTURE_SLACK_S - 5)  # a few seconds' margin for the clock
    assert not accepts(UnixTime, now + FUTURE_SLACK_S + 5)


@pytest.mark.parametrize("value", [10**19, INT64_MAX + 1, -1, 0])
def test_a_time_past_int64_or_before_the_epoch_is_refused(value: int) -> None:
    assert not accepts(UnixTime, value)


@pytest.mark.parametrize(("length", "ok"), [(0, False), (1, True), (MAX_ID_LENGTH, True),
                                            (MAX_ID_LENGTH + 1, False)])
def test_an_id_has_1_to_128_characters(length: int, ok: bool) -> None:
    assert accepts(Id, "7" * length) is ok


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb", "\tab", "ab\x7f", "a\x85b", "\x1b[31m"])
def test_an_id_with_a_control_character_is_refused(bad: str) -> None:
    assert not accepts(Id, bad)


def test_an_id_may_hold_any_printable_unicode() -> None:
    assert accepts(Id, "shop-ünïcode/+?&= 東京")


@pytest.mark.parametrize(("kind", "limit"), [(Name, MAX_NAME_LENGTH), (Text, MAX_TEXT_LENGTH),
                                             (Url, MAX_URL_LENGTH)])
def test_text_is_bounded_in_length(kind: Any, limit: int) -> None:
    assert accepts(kind, "x" * limit)
    assert not accepts(kind, "x" * (limit + 1))


def test_free_text_may_span_lines_but_a_url_may_not() -> None:
    assert accepts(Text, "Cracked case.\nSecond line")
    assert not accepts(Url, "https://img/1.jpeg\n")


@pytest.mark.parametrize(("value", "ok"), [
    ("0", True), ("19.99", True), ("999999999999.999999", True), ("19.9900000000", True),
    ("1E+11", True), ("1E+12", False), ("1000000000000", False), ("0.0000001", False),
    ("-0.01", False), ("NaN", False), ("sNaN", False), ("Infinity", False), ("-Infinity", False),
    ("1e999999999", False), ("1E-999999999", False),
])
def test_an_amount_is_a_finite_bounded_non_negative_decimal(value: str, ok: bool) -> None:
    assert accepts(Amount, value) is ok
    assert accepts(Amount, Decimal(value)) is ok


@pytest.mark.parametrize(("value", "ok"), [(0, True), (-1, False), (INT64_MAX, True),
                                           (INT64_MAX + 1, False)])
def test_a_count_is_between_0_and_int64_max(value: int, ok: bool) -> None:
    assert accepts(Count, value) is ok


@pytest.mark.parametrize(("value", "ok"), [(-INT64_MAX - 1, True), (-INT64_MAX - 2, False),
                                           (INT64_MAX, True), (INT64_MAX + 1, False)])
def test_an_int64_code_fits_int64(value: int, ok: bool) -> None:
    assert accepts(Int64, value) is ok


@pytest.mark.parametrize(("value", "ok"), [("USD", True), ("usd", False), ("US", False),
                                           ("USDT", False)])
def test_a_currency_is_three_capital_letters(value: str, ok: bool) -> None:
    assert accepts(CurrencyCode, value) is ok


def event(**changes: Any) -> dict[str, Any]:
    return {"shop_id": "7494560109732840000", "return_id": "4035318504086000000",
            "order_id": "576461413038785752", "status": ReturnStatus.AFTERSALE_APPLYING.value,
            "update_time": 1_732_679_990, "source": EventSource.WEBHOOK_202309.value,
            **changes}


def refused_fields(payload: dict[str, Any]) -> list[str]:
    """The fields `ReturnEvent` names when it refuses the payload, validated from JSON as the
    state machine does ([] when it accepts)."""
    try:
        ReturnEvent.model_validate_json(json.dumps(payload))
    except ValidationError as exc:
        return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
    return []


def test_a_valid_event_is_accepted() -> None:
    assert refused_fields(event(details={
        "refund": {"amount": "19.99", "currency": "USD"}, "reason_text": "x" * MAX_TEXT_LENGTH,
        "items": [{"sku_id": "1729", "quantity": 2, "product_name": "Earbuds"}],
        "request_time": 1_732_600_000})) == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"update_time": 10**19}, "update_time"),
    ({"update_time": 1}, "update_time"),
    ({"shop_id": "s" * 129}, "shop_id"),
    ({"return_id": "r\x00"}, "return_id"),
    ({"order_id": ""}, "order_id"),
    ({"notification_id": "n\n1"}, "notification_id"),
    ({"actor": "a" * (MAX_NAME_LENGTH + 1)}, "actor"),
    ({"details": {"request_time": 10**19}}, "details.request_time"),
    ({"details": {"refund": {"amount": "NaN", "currency": "USD"}}}, "details.refund.amount"),
    ({"details": {"refund": {"amount": "1e400", "currency": "USD"}}}, "details.refund.amount"),
    ({"details": {"reason_text": "x" * (MAX_TEXT_LENGTH + 1)}}, "details.reason_text"),
    ({"details": {"tracking_number": "T" * 129}}, "details.tracking_number"),
    ({"details": {"items": [{"quantity": 2**63}]}}, "details.items.0.quantity"),
    ({"details": {"items": [{"sku_id": "1\x002"}]}}, "details.items.0.sku_id"),
    ({"details": {"items": [{"product_name": "p" * (MAX_NAME_LENGTH + 1)}]}},
     "details.items.0.product_name"),
    ({"details": {"items": [{}] * (MAX_ITEMS + 1)}}, "details.items"),
])
def test_return_event_refuses_impossible_values_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    assert refused_fields(event(**changes)) == [field]


@pytest.mark.parametrize("window", [{"since": 2**63}, {"until": 10**19}, {"since": -1}])
def test_a_sync_command_window_fits_int64(window: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        SyncCommand(shop_id="s", **window)
