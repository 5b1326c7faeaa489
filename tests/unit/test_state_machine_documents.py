"""The read model's stored documents (`state_machine.documents`): what the state machine and
the query API read back is what was written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.deadlines import SellerAction
from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent
from contracts.read_model import EventRecord, Milestones, Outcome, ReturnState
from contracts.statuses import ReturnStatus as S
from state_machine.batch import Change
from state_machine.documents import event_document, return_document, stored_event, stored_return

T0 = 1_732_600_000


def _record(details: ReturnDetails) -> EventRecord:
    event = ReturnEvent(shop_id="s", return_id="r1", order_id="o1", status=S.AFTERSALE_APPLYING,
                        update_time=T0, source=EventSource.WEBHOOK_202309, details=details)
    return EventRecord(return_key="s:r1", shop_id="s", update_time=T0, rank=1, event=event,
                       deliveries=2, last_observed_at=datetime(2026, 1, 1, tzinfo=UTC),
                       partition=3, offset=7, outcome=Outcome.APPLIED)


def _nulls(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_nulls(v) for v in value.values())
    if isinstance(value, list):
        return sum(_nulls(v) for v in value)
    return int(value is None)


def test_a_history_document_holds_no_nulls_and_reads_back_as_the_record_it_was() -> None:
    for details in (ReturnDetails(), ReturnDetails(refund=Money(amount="12.50", currency="EUR"),
                                                   next_actions=())):
        record = _record(details)
        doc = event_document(record)
        assert _nulls(doc) == 0
        assert doc["_id"] == record.event.event_id
        assert EventRecord.model_validate(doc) == record
        assert stored_event(doc).fact.event == record.event


def test_an_empty_list_is_kept_apart_from_an_unknown_one() -> None:
    """`next_actions=()` clears a deadline; left out, it would read back as "not known"."""
    doc = event_document(_record(ReturnDetails(next_actions=())))
    assert doc["event"]["details"]["next_actions"] == []


def _state(details: ReturnDetails) -> ReturnState:
    seen = datetime(2026, 1, 1, tzinfo=UTC)
    return ReturnState(shop_id="s", return_id="r1", order_id="o1", status=S.AFTERSALE_APPLYING,
                       reverse_type=None, update_time=T0, details=details, first_seen_at=seen,
                       last_seen_at=seen, milestones=Milestones.opened(S.AFTERSALE_APPLYING, T0))


def test_a_return_document_holds_no_nulls_and_reads_back_as_the_state_it_was() -> None:
    due = ReturnDetails(next_actions=(SellerAction(action="A", deadline=T0 + 60),))
    for details in (ReturnDetails(), ReturnDetails(next_actions=()), due):
        state = _state(details)
        doc = return_document(Change("s:r1", "s", state, (T0, 1), 3, 7, 4, ()), "batch")
        assert _nulls(doc) == 0
        stored = stored_return(doc)
        assert (stored.state, stored.partition, stored.offset, stored.version) == (state, 3, 7, 5)
        # only a return with a deadline is found by `action_due` (the Needs action list)
        assert ("action_due" in doc) == (details is due)
