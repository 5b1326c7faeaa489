"""Pure mapping of TikTok return webhooks (legacy type 2, 202309 type 12) onto contracts."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.messages import EventSource, RejectionReason, ReturnDetails
from contracts.statuses import (
    LEGACY_STATUS_CODES,
    V202309_STATUS_NAMES,
    ReturnStatus,
    ReverseType,
)
from ingestor.rejections import webhook_rejection
from ingestor.webhooks import (
    Accepted,
    Ignored,
    Rejected,
    WebhookShapeError,
    parse_webhook,
    shape_rejection,
)

NOW = datetime(2024, 11, 27, 4, 0, tzinfo=UTC)

LEGACY: dict[str, Any] = {
    "type": 2, "shop_id": "7494560109732840000", "timestamp": 1732680000,
    "data": {"order_id": "576461413038785752", "reverse_order_id": "2100345678901234",
             "reverse_order_status": 3, "reverse_event_type": "ORDER_RETURN",
             "reverse_user": 1, "update_time": 1732679990},
}
V202309: dict[str, Any] = {
    "type": 12, "tts_notification_id": "7327112393057371910", "shop_id": "7494560109732840000",
    "timestamp": 1732680000,
    "data": {"order_id": "576461413038785752", "return_id": "4035318504086000000",
             "return_role": "BUYER", "return_type": "RETURN_AND_REFUND",
             "return_status": "AWAITING_BUYER_SHIP", "create_time": 1732600000,
             "update_time": 1732679990},
}


def with_data(hook: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(hook)
    for name, value in changes.items():
        if value is None:
            out["data"].pop(name, None)
        else:
            out["data"][name] = value
    return out


def accepted(payload: Any) -> Accepted:
    outcome = parse_webhook(payload, observed_at=NOW)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def rejected(payload: Any) -> Rejected:
    outcome = parse_webhook(payload, observed_at=NOW)
    assert isinstance(outcome, Rejected), outcome
    return outcome


def shape_error(payload: Any) -> WebhookShapeError:
    with pytest.raises(WebhookShapeError) as info:
        parse_webhook(payload, observed_at=NOW)
    return info.value


# --- legacy (type 2) ---------------------------------------------------------------------------

def test_legacy_return_webhook_maps_to_a_canonical_event() -> None:
    event = accepted(LEGACY).event
    assert event.shop_id == "7494560109732840000"
    assert event.return_id == "2100345678901234"
    assert event.order_id == "576461413038785752"
    assert event.status is ReturnStatus.AFTERSALE_RETURNING
    assert event.reverse_type is ReverseType.RETURN_AND_REFUND
    assert event.update_time == 1732679990
    assert event.actor == "buyer"
    assert event.source is EventSource.WEBHOOK_LEGACY
    assert event.notification_id is None
    assert event.observed_at == NOW
    assert event.key == "7494560109732840000:2100345678901234"
    assert event.event_id == "7494560109732840000:2100345678901234:AFTERSALE_RETURNING:1732679990"


@pytest.mark.parametrize(("code", "status"), sorted(LEGACY_STATUS_CODES.items()))
def test_every_legacy_status_code_maps_to_its_canonical_status(
    code: int, status: ReturnStatus
) -> None:
    assert accepted(with_data(LEGACY, reverse_order_status=code)).event.status is status


@pytest.mark.parametrize(
    ("event_type", "reverse_type"),
    [("ORDER_REFUND", ReverseType.REFUND_ONLY), ("ORDER_RETURN", ReverseType.RETURN_AND_REFUND),
     ("ORDER_REQUEST_CANCEL", ReverseType.REQUEST_CANCEL)],
)
def test_legacy_reverse_type_is_inferred_from_reverse_event_type(
    event_type: str, reverse_type: ReverseType
) -> None:
    hook = with_data(LEGACY, reverse_event_type=event_type, reverse_order_status=1)
    assert accepted(hook).event.reverse_type is reverse_type


def test_legacy_webhook_without_reverse_event_type_has_unknown_reverse_type() -> None:
    assert accepted(with_data(LEGACY, reverse_event_type=None)).event.reverse_type is None


def test_legacy_reverse_type_code_is_used_when_event_type_is_absent() -> None:
    hook = with_data(LEGACY, reverse_event_type=None, reverse_type=2, reverse_order_status=1)
    assert accepted(hook).event.reverse_type is ReverseType.REFUND_ONLY


@pytest.mark.parametrize(
    ("code", "actor"), [(1, "buyer"), (2, "seller"), (3, "operator"), (4, "system")]
)
def test_legacy_reverse_user_maps_to_actor(code: int, actor: str) -> None:
    assert accepted(with_data(LEGACY, reverse_user=code)).event.actor == actor


def test_legacy_unknown_status_code_is_rejected_as_unknown_status() -> None:
    outcome = rejected(with_data(LEGACY, reverse_order_status=42))
    assert outcome.reason is RejectionReason.UNKNOWN_STATUS
    assert "42" in outcome.detail
    assert (outcome.shop_id, outcome.return_id) == ("7494560109732840000", "2100345678901234")
    assert outcome.source is EventSource.WEBHOOK_LEGACY


def test_legacy_unknown_reverse_event_type_is_rejected_as_unsupported_type() -> None:
    outcome = rejected(with_data(LEGACY, reverse_event_type="ORDER_CANCEL"))
    assert outcome.reason is RejectionReason.UNSUPPORTED_TYPE
    assert "ORDER_CANCEL" in outcome.detail


def test_legacy_cancel_reverse_type_code_is_rejected_as_unsupported_type() -> None:
    outcome = rejected(with_data(LEGACY, reverse_event_type=None, reverse_type=1))
    assert outcome.reason is RejectionReason.UNSUPPORTED_TYPE


def test_numeric_ids_are_kept_as_their_digits() -> None:
    hook = copy.deepcopy(LEGACY)
    hook["shop_id"] = 7494560109732840000
    hook["data"]["reverse_order_id"] = 2100345678901234
    event = accepted(hook).event
    assert (event.shop_id, event.return_id) == ("7494560109732840000", "2100345678901234")


# --- 202309 (type 12) --------------------------------------------------------------------------

def test_202309_return_webhook_maps_to_a_canonical_event() -> None:
    event = accepted(V202309).event
    assert event.shop_id == "7494560109732840000"
    assert event.return_id == "4035318504086000000"
    assert event.order_id == "576461413038785752"
    assert event.status is ReturnStatus.AFTERSALE_RETURNING
    assert event.reverse_type is ReverseType.RETURN_AND_REFUND
    assert event.update_time == 1732679990
    assert event.details == ReturnDetails(request_time=1732600000)
    assert event.notification_id == "7327112393057371910"
    assert event.actor == "buyer"
    assert event.source is EventSource.WEBHOOK_202309


@pytest.mark.parametrize(("name", "status"), sorted(V202309_STATUS_NAMES.items()))
def test_every_202309_status_name_maps_to_its_canonical_status(
    name: str, status: ReturnStatus
) -> None:
    assert accepted(with_data(V202309, return_status=name)).event.status is status


def test_202309_refund_type_maps_to_refund_only() -> None:
    hook = with_data(V202309, return_type="REFUND",
                     return_status="RETURN_OR_REFUND_REQUEST_PENDING")
    assert accepted(hook).event.reverse_type is ReverseType.REFUND_ONLY


def test_202309_unknown_status_is_rejected_as_unknown_status() -> None:
    outcome = rejected(with_data(V202309, return_status="SOMETHING_NEW"))
    assert outcome.reason is RejectionReason.UNKNOWN_STATUS
    assert "SOMETHING_NEW" in outcome.detail
    assert outcome.return_id == "4035318504086000000"
    assert outcome.source is EventSource.WEBHOOK_202309


def test_202309_replacement_is_rejected_as_unsupported_type() -> None:
    hook = with_data(V202309, return_type="REPLACEMENT",
                     return_status="REPLACEMENT_REQUEST_PENDING")
    outcome = rejected(hook)
    assert outcome.reason is RejectionReason.UNSUPPORTED_TYPE
    assert "REPLACEMENT" in outcome.detail


def test_202309_replacement_status_without_type_is_rejected_as_unknown_status() -> None:
    hook = with_data(V202309, return_type=None, return_status="REPLACEMENT_REQUEST_PENDING")
    assert rejected(hook).reason is RejectionReason.UNKNOWN_STATUS


def test_extra_fields_added_by_tiktok_are_accepted() -> None:
    hook = copy.deepcopy(V202309)
    hook["new_top_level"] = {"x": 1}
    hook["data"]["new_field"] = "y"
    assert accepted(hook).event.status is ReturnStatus.AFTERSALE_RETURNING


# --- other types and wrong shapes -------------------------------------------------------------

@pytest.mark.parametrize("webhook_type", [1, 3, 4, 6, 7, 99])
def test_non_return_webhook_types_are_ignored(webhook_type: int) -> None:
    payload = {"type": webhook_type, "shop_id": "1", "data": {"order_id": "1"}}
    assert parse_webhook(payload, observed_at=NOW) == Ignored(webhook_type)


def test_missing_type_is_a_shape_error_naming_type() -> None:
    assert shape_error({"shop_id": "1", "data": {}}).fields == ("type",)


def test_body_that_is_not_an_object_is_a_shape_error() -> None:
    assert shape_error([1, 2]).fields == ("body",)


@pytest.mark.parametrize(
    ("hook", "field"),
    [(LEGACY, "reverse_order_id"), (LEGACY, "update_time"), (V202309, "return_status"),
     (V202309, "order_id")],
)
def test_missing_data_field_is_a_shape_error_naming_it(hook: dict[str, Any], field: str) -> None:
    payload = copy.deepcopy(hook)
    del payload["data"][field]
    assert f"data.{field}" in shape_error(payload).fields


def test_wrongly_typed_field_is_a_shape_error_naming_it() -> None:
    err = shape_error(with_data(LEGACY, update_time="yesterday"))
    assert err.fields == ("data.update_time",)
    assert "data.update_time" in str(err)


def test_missing_shop_id_is_a_shape_error_naming_it() -> None:
    payload = copy.deepcopy(V202309)
    del payload["shop_id"]
    assert shape_error(payload).fields == ("shop_id",)


def test_empty_return_id_is_a_shape_error() -> None:
    assert shape_error(with_data(V202309, return_id="")).fields == ("data.return_id",)


# --- impossible values (contracts.limits) ------------------------------------------------------

@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (with_data(V202309, update_time=10**19), "data.update_time"),
        (with_data(LEGACY, update_time=10**19), "data.update_time"),
        (with_data(LEGACY, update_time=1_000), "data.update_time"),
        (with_data(V202309, create_time=int(time.time()) + 2 * 86_400), "data.create_time"),
        ({**V202309, "timestamp": -1}, "timestamp"),
        ({**V202309, "shop_id": "7" * 129}, "shop_id"),
        ({**LEGACY, "shop_id": "7494\x00"}, "shop_id"),
        ({**V202309, "tts_notification_id": "73\n27"}, "tts_notification_id"),
        (with_data(LEGACY, reverse_order_id="2100\x1b"), "data.reverse_order_id"),
        (with_data(V202309, order_id="5" * 129), "data.order_id"),
        (with_data(V202309, return_status="X" * 129), "data.return_status"),
        (with_data(LEGACY, reverse_user=2**63), "data.reverse_user"),
        (with_data(LEGACY, reverse_order_status=-(2**63) - 1), "data.reverse_order_status"),
        ({**LEGACY, "type": 2**64}, "type"),
    ],
)
def test_an_impossible_value_is_a_shape_error_naming_the_field(
    payload: dict[str, Any], field: str
) -> None:
    assert shape_error(payload).fields == (field,)


def test_times_from_2016_to_tomorrow_are_accepted() -> None:
    now = int(time.time())
    assert accepted(with_data(V202309, update_time=1_451_606_400, create_time=None))
    assert accepted(with_data(V202309, update_time=now + 86_000))


def test_an_invalid_webhook_is_rejected_as_invalid_event_with_its_ids() -> None:
    payload = with_data(V202309, update_time=10**19)
    rejection = shape_rejection(payload, shape_error(payload))
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert rejection.source is EventSource.WEBHOOK_202309
    assert (rejection.shop_id, rejection.return_id) == (
        "7494560109732840000", "4035318504086000000")
    assert "data.update_time" in rejection.detail


def test_an_invalid_legacy_webhook_names_its_reverse_order_id() -> None:
    payload = with_data(LEGACY, update_time=10**19)
    rejection = shape_rejection(payload, shape_error(payload))
    assert rejection.source is EventSource.WEBHOOK_LEGACY
    assert rejection.return_id == "2100345678901234"


@pytest.mark.parametrize("payload", [
    {**V202309, "shop_id": "7494\x00", "data": {"return_id": "r" * 200}},
    {**V202309, "shop_id": 7494560109732840000, "data": "not an object"},
    ["not", "an", "object"],
    {"type": "twelve", "shop_id": "7494560109732840000"},
])
def test_an_invalid_webhook_names_only_ids_that_are_valid(payload: Any) -> None:
    rejection = shape_rejection(payload, shape_error(payload))
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert rejection.return_id is None
    assert rejection.shop_id in (None, "7494560109732840000")
    assert webhook_rejection(rejection, b"{}", at=NOW).shop_id == rejection.shop_id


def test_an_invalid_webhook_is_published_with_its_body_and_a_deterministic_id() -> None:
    payload = with_data(V202309, update_time=10**19)
    raw = json.dumps(payload).encode()
    rejection = shape_rejection(payload, shape_error(payload))
    first = webhook_rejection(rejection, raw, at=NOW)
    again = webhook_rejection(rejection, raw, at=datetime.now(UTC))
    assert first.rejection_id == again.rejection_id
    assert first.raw == raw.decode()
    assert first.stage == "ingestor"
    assert first.detail.startswith("webhook_202309: invalid webhook: data.update_time")


# --- rejections as published -----------------------------------------------------------------

def test_rejection_keeps_raw_body_and_has_a_deterministic_id() -> None:
    raw = b'{"type": 12, "whatever": true}'
    outcome = rejected(with_data(V202309, return_status="SOMETHING_NEW"))
    first = webhook_rejection(outcome, raw, at=NOW)
    again = webhook_rejection(outcome, raw, at=datetime(2030, 1, 1, tzinfo=UTC))
    assert first.rejection_id == again.rejection_id
    assert first.rejection_id.startswith("ingestor:")
    assert first.stage == "ingestor"
    assert first.raw == raw.decode()
    assert first.reason is RejectionReason.UNKNOWN_STATUS
    assert first.shop_id == "7494560109732840000"
    assert webhook_rejection(outcome, raw + b" ", at=NOW).rejection_id != first.rejection_id


def test_rejection_of_non_utf8_body_keeps_it_as_base64() -> None:
    outcome = rejected(with_data(V202309, return_status="SOMETHING_NEW"))
    assert (webhook_rejection(outcome, b"\xff\xfe", at=NOW).raw or "").startswith("base64:")
