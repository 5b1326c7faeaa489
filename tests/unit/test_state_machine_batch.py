"""Planning a consumed batch: decoding, per-return ordering, redelivery, rejections (pure)."""

from __future__ import annotations

import json

from contracts.messages import EventSource, RejectionReason, ReturnEvent
from contracts.read_model import Outcome
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from state_machine.batch import Delivery, Stored, decode_all, plan, touched_keys

T0 = 1_732_600_000  # tests count seconds from here: event times start at 2016 (contracts.limits)


def event(return_id: str, status: S, t: int) -> ReturnEvent:
    return ReturnEvent(shop_id="s", return_id=return_id, order_id="o", status=status,
                       update_time=T0 + t, reverse_type=T.RETURN_AND_REFUND,
                       source=EventSource.SYNC_202309)


def deliveries(*items: ReturnEvent | bytes, partition: int = 0) -> list[Delivery]:
    return [
        Delivery(EVENTS_TOPIC, partition, offset,
                 item if isinstance(item, bytes) else item.model_dump_json().encode())
        for offset, item in enumerate(items)
    ]


def test_events_of_one_return_are_folded_in_offset_order() -> None:
    batch = deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r2", S.COMPLETE, 5),
                       event("r1", S.AFTERSALE_RETURNING, 2))
    result = plan(decode_all(batch), {})
    by_key = {c.key: c for c in result.changes}
    assert by_key["s:r1"].state.status is S.AFTERSALE_RETURNING
    assert by_key["s:r1"].offset == 2 and by_key["s:r1"].expected_version is None
    assert by_key["s:r2"].state.status is S.COMPLETE


def test_redelivered_records_already_applied_change_nothing() -> None:
    batch = deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r1", S.AFTERSALE_RETURNING, 2))
    first = plan(decode_all(batch), {})
    (change,) = first.changes
    stored = {"s:r1": Stored(change.state, change.partition, change.offset, version=1)}
    again = plan(decode_all(batch), stored)
    assert again.changes == [] and again.redelivered == 2


def test_a_tiktok_duplicate_at_a_new_offset_is_counted_not_applied_twice() -> None:
    batch = deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r1", S.AFTERSALE_APPLYING, 1))
    (change,) = plan(decode_all(batch), {}).changes
    assert change.state.duplicate_count == 1 and len(change.state.history) == 1


def test_bytes_that_are_not_json_are_rejected_with_their_position() -> None:
    batch = deliveries(b"\xff\x00 not json", event("r1", S.AFTERSALE_APPLYING, 1), partition=7)
    result = plan(decode_all(batch), {})
    (rejection,) = result.rejections
    assert rejection.reason is RejectionReason.UNDECODABLE
    assert (rejection.source_partition, rejection.source_offset) == (7, 0)
    assert rejection.raw is not None and rejection.raw.startswith("base64:")
    assert [c.key for c in result.changes] == ["s:r1"]


def test_json_that_is_not_an_event_is_rejected_naming_the_field() -> None:
    (rejection,) = plan(decode_all(deliveries(b'{"shop_id": "s"}')), {}).rejections
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert "return_id" in rejection.detail and rejection.shop_id == "s"


def test_an_unknown_status_on_the_topic_is_rejected_as_unknown_status() -> None:
    raw = event("r1", S.AFTERSALE_APPLYING, 1).model_dump(mode="json") | {"status": "LOST"}
    (rejection,) = plan(decode_all(deliveries(json.dumps(raw).encode())), {}).rejections
    assert rejection.reason is RejectionReason.UNKNOWN_STATUS
    assert rejection.return_id == "r1"


def test_an_invalid_transition_is_rejected_and_the_return_flagged() -> None:
    batch = deliveries(event("r1", S.COMPLETE, 1), event("r1", S.AFTERSALE_APPLYING, 2))
    result = plan(decode_all(batch), {})
    (rejection,) = result.rejections
    assert rejection.reason is RejectionReason.INVALID_TRANSITION
    assert rejection.rejection_id == f"{EVENTS_TOPIC}:0:1"
    assert result.changes[0].state.anomaly
    assert result.outcomes[Outcome.REJECTED] == 1


def test_touched_keys_are_the_returns_of_decodable_events() -> None:
    batch = deliveries(b"junk", event("r1", S.AFTERSALE_APPLYING, 1))
    assert touched_keys(decode_all(batch)) == {"s:r1"}
