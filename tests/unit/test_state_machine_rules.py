"""DOMAIN.md rules 1-9, one behaviour per test, on the pure core (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contracts.messages import EventSource, Money, RejectionReason, ReturnDetails, ReturnEvent
from contracts.read_model import Outcome, ReturnState
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.transitions import TRANSITIONS, shortest_path
from state_machine.domain import apply_event, apply_events

T0 = 1_732_600_000  # tests count seconds from here: event times start at 2016 (contracts.limits)


def ev(
    status: S,
    t: int,
    *,
    rtype: T | None = T.RETURN_AND_REFUND,
    source: EventSource = EventSource.WEBHOOK_202309,
    details: ReturnDetails | None = None,
) -> ReturnEvent:
    return ReturnEvent(
        shop_id="shop1", return_id="r1", order_id="o1", status=status, update_time=T0 + t,
        reverse_type=rtype, source=source, details=details or ReturnDetails(),
    )


def state_after(*events: ReturnEvent) -> ReturnState:
    state, _ = apply_events(None, list(events))
    assert state is not None
    return state


def test_first_event_is_accepted_whatever_its_status() -> None:
    decision = apply_event(None, ev(S.AFTERSALE_BUYER_SHIPPED, 100))
    assert decision.outcome is Outcome.APPLIED
    assert decision.state is not None and decision.state.status is S.AFTERSALE_BUYER_SHIPPED


def test_valid_transition_is_applied_with_one_history_entry() -> None:
    state = state_after(ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_RETURNING, 200))
    assert state.status is S.AFTERSALE_RETURNING and state.update_time == T0 + 200
    assert [h.outcome for h in state.history] == [Outcome.APPLIED, Outcome.APPLIED]


def test_webhook_and_sync_reporting_the_same_change_are_one_event() -> None:
    webhook = ev(S.AFTERSALE_APPLYING, 100, source=EventSource.WEBHOOK_LEGACY)
    refund = Money(amount=Decimal("12.30"), currency="USD")
    sync = ev(S.AFTERSALE_APPLYING, 100, source=EventSource.SYNC_LEGACY,
              details=ReturnDetails(refund=refund))
    state = state_after(webhook, sync)
    assert len(state.history) == 1
    assert state.duplicate_count == 1
    assert state.details.refund == refund  # the sync's details are not lost


def test_duplicate_delivery_changes_nothing_but_the_count() -> None:
    once = state_after(ev(S.AFTERSALE_APPLYING, 100))
    decision = apply_event(once, ev(S.AFTERSALE_APPLYING, 100))
    assert decision.outcome is Outcome.DUPLICATE
    assert decision.state is not None
    assert decision.state.history == once.history and decision.state.duplicate_count == 1


def test_older_event_is_recorded_as_stale_and_changes_no_status() -> None:
    state = state_after(ev(S.AFTERSALE_RETURNING, 200), ev(S.AFTERSALE_APPLYING, 100))
    assert state.status is S.AFTERSALE_RETURNING and state.update_time == T0 + 200
    assert state.history[-1].outcome is Outcome.STALE


def test_same_second_backwards_move_is_stale() -> None:
    state = state_after(ev(S.AFTERSALE_BUYER_SHIPPED, 200), ev(S.AFTERSALE_RETURNING, 200))
    assert state.status is S.AFTERSALE_BUYER_SHIPPED
    assert state.history[-1].outcome is Outcome.STALE


def test_same_second_forward_move_is_applied() -> None:
    state = state_after(ev(S.AFTERSALE_RETURNING, 200), ev(S.AFTERSALE_BUYER_SHIPPED, 200))
    assert state.status is S.AFTERSALE_BUYER_SHIPPED


def test_gap_is_applied_and_missed_statuses_are_marked_inferred() -> None:
    state = state_after(ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_SELLER_REJECT_RECEIVE, 300))
    assert state.status is S.AFTERSALE_SELLER_REJECT_RECEIVE
    assert [(h.status, h.outcome) for h in state.history] == [
        (S.AFTERSALE_APPLYING, Outcome.APPLIED),
        (S.AFTERSALE_RETURNING, Outcome.INFERRED),
        (S.AFTERSALE_BUYER_SHIPPED, Outcome.INFERRED),
        (S.AFTERSALE_SELLER_REJECT_RECEIVE, Outcome.APPLIED),
    ]


def test_move_out_of_a_terminal_status_is_rejected_and_flags_an_anomaly() -> None:
    decision = apply_event(state_after(ev(S.COMPLETE, 100)), ev(S.AFTERSALE_APPLYING, 200))
    assert decision.outcome is Outcome.REJECTED
    assert decision.rejection is not None
    assert decision.rejection[0] is RejectionReason.INVALID_TRANSITION
    assert decision.state is not None
    assert decision.state.status is S.COMPLETE and decision.state.anomaly
    assert decision.state.history[-1].outcome is Outcome.REJECTED


def test_refund_only_request_can_never_enter_returning() -> None:
    start = state_after(ev(S.AFTERSALE_APPLYING, 100, rtype=T.REFUND_ONLY))
    decision = apply_event(start, ev(S.AFTERSALE_RETURNING, 200, rtype=None))
    assert decision.rejection is not None
    assert decision.rejection[0] is RejectionReason.FORBIDDEN_FOR_TYPE
    assert decision.state is not None and decision.state.status is S.AFTERSALE_APPLYING


def test_refund_only_gap_never_infers_a_parcel_status() -> None:
    start = state_after(ev(S.AFTERSALE_APPLYING, 100, rtype=T.REFUND_ONLY))
    state = apply_event(start, ev(S.COMPLETE, 200, rtype=T.REFUND_ONLY)).state
    assert state is not None
    assert [h.status for h in state.history] == [S.AFTERSALE_APPLYING, S.AFTERSALE_SUCCESS,
                                                 S.COMPLETE]


def test_same_status_with_newer_time_updates_details_without_transition() -> None:
    state = state_after(
        ev(S.AFTERSALE_BUYER_SHIPPED, 100),
        ev(S.AFTERSALE_BUYER_SHIPPED, 150, details=ReturnDetails(tracking_number="TRK1")),
    )
    assert state.status is S.AFTERSALE_BUYER_SHIPPED and state.update_time == T0 + 150
    assert state.details.tracking_number == "TRK1"
    assert state.history[-1].outcome is Outcome.DETAILS_UPDATED


def test_details_an_event_does_not_know_are_kept() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 100, details=ReturnDetails(reason="damaged")),
        ev(S.AFTERSALE_RETURNING, 200, details=ReturnDetails(tracking_number="TRK")),
    )
    assert state.details.reason == "damaged" and state.details.tracking_number == "TRK"


def test_a_first_event_forbidden_for_its_type_is_rejected_without_a_return() -> None:
    decision = apply_event(None, ev(S.AFTERSALE_RETURNING, 100, rtype=T.REFUND_ONLY))
    assert decision.state is None
    assert decision.rejection is not None
    assert decision.rejection[0] is RejectionReason.FORBIDDEN_FOR_TYPE


@pytest.mark.parametrize("current", list(S))
def test_every_direct_transition_is_a_one_step_path(current: S) -> None:
    for target in TRANSITIONS[current]:
        assert shortest_path(current, target, T.RETURN_AND_REFUND) == (target,)


def test_buyer_appeal_after_rejection_is_a_valid_transition() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_REJECT_APPLICATION, 200),
        ev(S.AFTERSALE_APPLYING, 300),
    )
    assert state.status is S.AFTERSALE_APPLYING
    assert [h.outcome for h in state.history] == [Outcome.APPLIED] * 3


def test_a_late_event_fills_missing_details_but_never_overwrites_newer_ones() -> None:
    state = state_after(
        ev(S.AFTERSALE_SUCCESS, 400, details=ReturnDetails(reason="late-known")),
        ev(S.AFTERSALE_BUYER_SHIPPED, 300, details=ReturnDetails(tracking_number="NEW")),
        ev(S.AFTERSALE_RETURNING, 200,
           details=ReturnDetails(tracking_number="OLD", reason="older reason")),
    )
    assert state.status is S.AFTERSALE_SUCCESS
    assert state.details.tracking_number == "NEW"
    assert state.details.reason == "late-known"


def test_a_parcel_status_for_a_refund_only_request_is_rejected_even_when_old() -> None:
    start = state_after(ev(S.AFTERSALE_SUCCESS, 500, rtype=T.REFUND_ONLY))
    decision = apply_event(start, ev(S.AFTERSALE_BUYER_SHIPPED, 100, rtype=None))
    assert decision.rejection is not None
    assert decision.rejection[0] is RejectionReason.FORBIDDEN_FOR_TYPE
