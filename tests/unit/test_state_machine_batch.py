"""Planning a consumed batch: decoding, per-return order, redelivery, history, counts and
rejections (pure; the store is tests.unit.memory_read_model)."""

from __future__ import annotations

import contextlib
import json

from contracts.messages import EventSource, RejectionReason, ReturnEvent
from contracts.read_model import Outcome
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from state_machine.batch import Delivery, Loaded, decode_all, plan, touched_keys
from tests.unit.memory_read_model import Crash, MemoryReadModel

T0 = 1_732_600_000  # times below are seconds after it


def event(return_id: str, status: S, t: int, rtype: T | None = T.RETURN_AND_REFUND) -> ReturnEvent:
    return ReturnEvent(shop_id="s", return_id=return_id, order_id="o", status=status,
                       update_time=T0 + t, reverse_type=rtype, source=EventSource.SYNC_202309)


def deliveries(*items: ReturnEvent | bytes, partition: int = 0, start: int = 0) -> list[Delivery]:
    return [
        Delivery(EVENTS_TOPIC, partition, start + offset,
                 item if isinstance(item, bytes) else item.model_dump_json().encode())
        for offset, item in enumerate(items)
    ]


def test_events_of_one_return_are_folded_and_counted_per_status() -> None:
    model = MemoryReadModel()
    model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r2", S.COMPLETE, 5),
                           event("r1", S.AFTERSALE_RETURNING, 2)))
    assert model.returns["s:r1"].state.status is S.AFTERSALE_RETURNING
    assert model.returns["s:r1"].offset == 2
    assert model.returns["s:r1"].version == 1
    assert model.returns["s:r2"].state.status is S.COMPLETE
    assert model.status_counts("s") == {"AFTERSALE_RETURNING": 1, "COMPLETE": 1}
    assert len(model.events["s:r1"]) == 2


def test_redelivered_records_already_applied_change_nothing() -> None:
    model = MemoryReadModel()
    batch = deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r1", S.AFTERSALE_RETURNING, 2))
    model.apply(batch)
    again = plan(decode_all(batch), model.load(decode_all(batch)))
    assert again.changes == []
    assert again.counts == []
    assert again.redelivered == 2


def test_a_tiktok_duplicate_at_a_new_offset_is_counted_not_applied_twice() -> None:
    model = MemoryReadModel()
    model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1)))
    result = model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1), start=1))
    assert result.outcomes[Outcome.DUPLICATE] == 1
    assert model.returns["s:r1"].state.duplicate_count == 1
    (stored,) = model.events["s:r1"].values()
    assert stored.fact.deliveries == 2
    assert model.status_counts("s") == {"AFTERSALE_APPLYING": 1}


def test_an_event_in_order_needs_no_history_read() -> None:
    model = MemoryReadModel()
    model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1)))
    decoded = decode_all(deliveries(event("r1", S.AFTERSALE_RETURNING, 2), start=1))
    assert model.load(decoded).histories == {}


def test_a_late_event_is_folded_in_its_place_and_recounted() -> None:
    model = MemoryReadModel()
    model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1),
                           event("r1", S.AFTERSALE_RETURNING, 3)))
    decoded = decode_all(deliveries(event("r1", S.CANCEL_SUCCESS, 2), start=2))
    assert set(model.load(decoded).histories) == {"s:r1"}
    result = model.apply(deliveries(event("r1", S.CANCEL_SUCCESS, 2), start=2))
    assert model.returns["s:r1"].state.status is S.CANCEL_SUCCESS
    assert model.status_counts("s") == {"CANCEL_SUCCESS": 1}
    (rejection,) = result.rejections  # RETURNING at 3 now comes after a terminal status
    assert rejection.event is not None
    assert rejection.event.status is S.AFTERSALE_RETURNING
    assert rejection.rejection_id == f"event:{rejection.event.event_id}"


def test_a_rejection_the_fold_no_longer_gives_is_withdrawn() -> None:
    model = MemoryReadModel()
    first = model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 2, T.REFUND_ONLY),
                                   event("r1", S.AFTERSALE_RETURNING, 3, None)))
    (rejected,) = first.rejections
    assert rejected.reason is RejectionReason.FORBIDDEN_FOR_TYPE
    assert not rejected.withdrawn
    # An earlier event says the request is a return: the parcel status is valid after all,
    # and the event that claimed "refund only" is the odd one out.
    later = model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 1), start=2))
    by_status = {r.event.status: r for r in later.rejections if r.event}
    assert by_status[S.AFTERSALE_RETURNING].withdrawn
    assert by_status[S.AFTERSALE_RETURNING].rejection_id == rejected.rejection_id
    assert by_status[S.AFTERSALE_APPLYING].reason is RejectionReason.INVALID_EVENT
    assert model.returns["s:r1"].state.status is S.AFTERSALE_RETURNING
    assert model.status_counts("s") == {"AFTERSALE_RETURNING": 1}


def test_a_crash_between_the_counts_and_the_returns_counts_nothing_twice() -> None:
    model = MemoryReadModel()
    batch = deliveries(event("r1", S.AFTERSALE_APPLYING, 1), event("r2", S.AFTERSALE_APPLYING, 1))
    with contextlib.suppress(Crash):
        model.apply(batch, crash_after="counts")
    bigger = [*batch, *deliveries(event("r1", S.AFTERSALE_RETURNING, 2), start=2)]
    model.apply(bigger)
    assert model.status_counts("s") == {"AFTERSALE_APPLYING": 1, "AFTERSALE_RETURNING": 1}


def test_bytes_that_are_not_json_are_rejected_with_their_position() -> None:
    batch = deliveries(b"\xff\x00 not json", event("r1", S.AFTERSALE_APPLYING, 1), partition=7)
    result = plan(decode_all(batch), Loaded())
    (rejection,) = result.rejections
    assert rejection.reason is RejectionReason.UNDECODABLE
    assert (rejection.source_partition, rejection.source_offset) == (7, 0)
    assert rejection.raw is not None
    assert rejection.raw.startswith("base64:")
    assert [c.key for c in result.changes] == ["s:r1"]


def test_json_that_is_not_an_event_is_rejected_naming_the_field() -> None:
    (rejection,) = plan(decode_all(deliveries(b'{"shop_id": "s"}')), Loaded()).rejections
    assert rejection.reason is RejectionReason.INVALID_EVENT
    assert "return_id" in rejection.detail
    assert rejection.shop_id == "s"


def test_an_unknown_status_on_the_topic_is_rejected_as_unknown_status() -> None:
    raw = event("r1", S.AFTERSALE_APPLYING, 1).model_dump(mode="json") | {"status": "LOST"}
    (rejection,) = plan(decode_all(deliveries(json.dumps(raw).encode())), Loaded()).rejections
    assert rejection.reason is RejectionReason.UNKNOWN_STATUS
    assert rejection.return_id == "r1"


def test_an_invalid_transition_is_rejected_and_the_return_flagged() -> None:
    model = MemoryReadModel()
    result = model.apply(deliveries(event("r1", S.COMPLETE, 1),
                                    event("r1", S.AFTERSALE_APPLYING, 2)))
    (rejection,) = result.rejections
    assert rejection.reason is RejectionReason.INVALID_TRANSITION
    assert (rejection.source_partition, rejection.source_offset) == (0, 1)
    assert model.returns["s:r1"].state.anomaly
    assert result.outcomes[Outcome.REJECTED] == 1


def test_a_return_whose_every_event_is_rejected_is_not_stored_but_its_history_is() -> None:
    model = MemoryReadModel()
    model.apply(deliveries(event("r1", S.AFTERSALE_RETURNING, 1, T.REFUND_ONLY)))
    assert "s:r1" not in model.returns
    assert len(model.events["s:r1"]) == 1
    assert model.status_counts("s") == {}
    model.apply(deliveries(event("r1", S.AFTERSALE_APPLYING, 2, None), start=1))
    assert model.returns["s:r1"].state.reverse_type is T.REFUND_ONLY
    assert model.status_counts("s") == {"AFTERSALE_APPLYING": 1}


def test_touched_keys_are_the_returns_of_decodable_events() -> None:
    batch = deliveries(b"junk", event("r1", S.AFTERSALE_APPLYING, 1))
    assert touched_keys(decode_all(batch)) == {"s:r1": "s"}
