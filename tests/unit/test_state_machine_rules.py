"""DOMAIN.md rules 1-9, one behaviour per test, on the pure core (no I/O).

A return's events are folded in one order (update_time, then the lifecycle order), whatever
order they arrive in: `fold_events` is that reference fold.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from contracts.messages import EventSource, Money, RejectionReason, ReturnDetails, ReturnEvent
from contracts.read_model import Outcome, ReturnState
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.transitions import LIFECYCLE_ORDER, TRANSITIONS, shortest_path
from state_machine.domain import Fact, Folded, Verdict, fold, fold_events, merge, order_key

T0 = 1_732_600_000  # times below are seconds after it


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
    state = fold_events(events).state
    assert state is not None
    return state


def timeline(*events: ReturnEvent) -> list[tuple[S, Outcome]]:
    """(status, outcome) of each event in fold order, inferred statuses included."""
    folded = fold_events(events)
    lines: list[tuple[S, Outcome]] = []
    for event in sorted({e.event_id: e for e in events}.values(), key=order_key):
        verdict = folded.verdicts[event.event_id]
        lines += [(status, Outcome.INFERRED) for status in verdict.inferred]
        lines.append((event.status, verdict.outcome))
    return lines


def verdict_of(folded: Folded, event: ReturnEvent) -> Verdict:
    return folded.verdicts[event.event_id]


def test_first_event_is_accepted_whatever_its_status() -> None:
    state = state_after(ev(S.AFTERSALE_BUYER_SHIPPED, 100))
    assert state.status is S.AFTERSALE_BUYER_SHIPPED


def test_valid_transition_is_applied_with_one_history_entry() -> None:
    events = (ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_RETURNING, 200))
    state = state_after(*events)
    assert state.status is S.AFTERSALE_RETURNING
    assert state.update_time == T0 + 200
    assert [outcome for _, outcome in timeline(*events)] == [Outcome.APPLIED, Outcome.APPLIED]


def test_webhook_and_sync_reporting_the_same_change_are_one_event() -> None:
    webhook = ev(S.AFTERSALE_APPLYING, 100, source=EventSource.WEBHOOK_LEGACY)
    refund = Money(amount=Decimal("12.30"), currency="USD")
    sync = ev(S.AFTERSALE_APPLYING, 100, source=EventSource.SYNC_LEGACY,
              details=ReturnDetails(refund=refund))
    state = state_after(webhook, sync)
    assert len(timeline(webhook, sync)) == 1
    assert state.duplicate_count == 1
    assert state.details.refund == refund  # the sync's details are not lost


def test_merging_two_deliveries_of_one_event_does_not_depend_on_their_order() -> None:
    a = Fact.of(ev(S.AFTERSALE_APPLYING, 100,
                   details=ReturnDetails(reason="a", tracking_number="T")))
    b = Fact.of(ev(S.AFTERSALE_APPLYING, 100, rtype=None,
                   details=ReturnDetails(reason="b", reason_text="text")))
    assert merge(a, b) == merge(b, a)
    merged = merge(a, b).event
    assert merged.details.tracking_number == "T"
    assert merged.details.reason_text == "text"
    assert merged.reverse_type is T.RETURN_AND_REFUND
    assert merge(a, b).deliveries == 2


def test_duplicate_delivery_changes_nothing_but_the_count() -> None:
    once = state_after(ev(S.AFTERSALE_APPLYING, 100))
    twice = state_after(ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_APPLYING, 100))
    assert twice.duplicate_count == 1
    assert twice.model_copy(update={"duplicate_count": 0}) == once.model_copy(
        update={"last_seen_at": twice.last_seen_at, "first_seen_at": twice.first_seen_at})


def test_a_late_older_event_takes_its_place_and_leaves_the_newer_status() -> None:
    events = (ev(S.AFTERSALE_RETURNING, 200), ev(S.AFTERSALE_APPLYING, 100))
    state = state_after(*events)
    assert state.status is S.AFTERSALE_RETURNING
    assert state.update_time == T0 + 200
    assert timeline(*events) == [(S.AFTERSALE_APPLYING, Outcome.APPLIED),
                                 (S.AFTERSALE_RETURNING, Outcome.APPLIED)]


def test_an_appeal_and_a_rejection_in_the_same_second_end_alike_in_both_orders() -> None:
    # They lead to each other (REJECT_APPLICATION <-> APPLYING): the lifecycle order decides.
    start = ev(S.AFTERSALE_REJECT_APPLICATION, 100)
    pair = [ev(S.AFTERSALE_APPLYING, 200), ev(S.AFTERSALE_REJECT_APPLICATION, 200)]
    one, other = fold_events([start, *pair]), fold_events([start, *reversed(pair)])
    assert one == other
    assert one.state is not None
    assert one.state.status is S.AFTERSALE_REJECT_APPLICATION
    assert not one.state.anomaly


def test_same_second_events_fold_in_lifecycle_order_whatever_their_arrival() -> None:
    for events in ((ev(S.AFTERSALE_RETURNING, 200), ev(S.AFTERSALE_BUYER_SHIPPED, 200)),
                   (ev(S.AFTERSALE_BUYER_SHIPPED, 200), ev(S.AFTERSALE_RETURNING, 200))):
        assert state_after(*events).status is S.AFTERSALE_BUYER_SHIPPED
        assert [o for _, o in timeline(*events)] == [Outcome.APPLIED, Outcome.APPLIED]


def test_lifecycle_order_names_every_status_once() -> None:
    assert sorted(LIFECYCLE_ORDER) == sorted(S)


def test_gap_is_applied_and_missed_statuses_are_marked_inferred() -> None:
    events = (ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_SELLER_REJECT_RECEIVE, 300))
    assert state_after(*events).status is S.AFTERSALE_SELLER_REJECT_RECEIVE
    assert timeline(*events) == [
        (S.AFTERSALE_APPLYING, Outcome.APPLIED),
        (S.AFTERSALE_RETURNING, Outcome.INFERRED),
        (S.AFTERSALE_BUYER_SHIPPED, Outcome.INFERRED),
        (S.AFTERSALE_SELLER_REJECT_RECEIVE, Outcome.APPLIED),
    ]


def test_move_out_of_a_terminal_status_is_rejected_and_flags_an_anomaly() -> None:
    late = ev(S.AFTERSALE_APPLYING, 200)
    folded = fold_events([ev(S.COMPLETE, 100), late])
    assert verdict_of(folded, late).outcome is Outcome.REJECTED
    assert verdict_of(folded, late).reason is RejectionReason.INVALID_TRANSITION
    assert folded.state is not None
    assert folded.state.status is S.COMPLETE
    assert folded.state.anomaly


def test_an_invalid_newer_event_is_rejected_even_when_it_arrives_first() -> None:
    invalid = ev(S.AFTERSALE_APPLYING, 300)
    valid = [ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_SUCCESS, 200), ev(S.COMPLETE, 250)]
    first = fold_events([invalid, *valid])
    last = fold_events([*valid, invalid])
    assert first == last
    assert first.state is not None
    assert first.state.status is S.COMPLETE
    assert first.state.anomaly
    assert verdict_of(first, invalid).outcome is Outcome.REJECTED


def test_a_late_event_can_turn_an_applied_one_into_a_rejected_one() -> None:
    applying, returning = ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_RETURNING, 300)
    before = fold(None, [Fact.of(applying), Fact.of(returning)])
    assert verdict_of(before, returning).outcome is Outcome.APPLIED
    cancel = ev(S.CANCEL_SUCCESS, 200)
    after = fold_events([applying, returning, cancel])
    assert verdict_of(after, returning).outcome is Outcome.REJECTED
    assert after.state is not None
    assert after.state.status is S.CANCEL_SUCCESS


def test_refund_only_request_can_never_enter_returning() -> None:
    returning = ev(S.AFTERSALE_RETURNING, 200, rtype=None)
    folded = fold_events([ev(S.AFTERSALE_APPLYING, 100, rtype=T.REFUND_ONLY), returning])
    assert verdict_of(folded, returning).reason is RejectionReason.FORBIDDEN_FOR_TYPE
    assert folded.state is not None
    assert folded.state.status is S.AFTERSALE_APPLYING


def test_the_type_of_a_request_is_known_from_any_of_its_events() -> None:
    # The first event names no type; a later one does: the parcel status before it is refused.
    returning = ev(S.AFTERSALE_RETURNING, 100, rtype=None)
    folded = fold_events([returning, ev(S.AFTERSALE_SUCCESS, 200, rtype=T.REFUND_ONLY)])
    assert verdict_of(folded, returning).reason is RejectionReason.FORBIDDEN_FOR_TYPE
    assert folded.state is not None
    assert folded.state.reverse_type is T.REFUND_ONLY


def test_an_event_claiming_another_type_is_rejected_as_invalid() -> None:
    other = ev(S.AFTERSALE_SUCCESS, 200, rtype=T.REFUND_ONLY)
    folded = fold_events([ev(S.AFTERSALE_APPLYING, 100), other])
    assert verdict_of(folded, other).reason is RejectionReason.INVALID_EVENT


def test_refund_only_gap_never_infers_a_parcel_status() -> None:
    events = (ev(S.AFTERSALE_APPLYING, 100, rtype=T.REFUND_ONLY),
              ev(S.COMPLETE, 200, rtype=T.REFUND_ONLY))
    assert [s for s, _ in timeline(*events)] == [S.AFTERSALE_APPLYING, S.AFTERSALE_SUCCESS,
                                                 S.COMPLETE]


def test_same_status_with_newer_time_updates_details_without_transition() -> None:
    events = (ev(S.AFTERSALE_BUYER_SHIPPED, 100),
              ev(S.AFTERSALE_BUYER_SHIPPED, 150, details=ReturnDetails(tracking_number="TRK1")))
    state = state_after(*events)
    assert state.status is S.AFTERSALE_BUYER_SHIPPED
    assert state.update_time == T0 + 150
    assert state.details.tracking_number == "TRK1"
    assert timeline(*events)[-1][1] is Outcome.DETAILS_UPDATED


def test_details_an_event_does_not_know_are_kept() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 100, details=ReturnDetails(reason="damaged")),
        ev(S.AFTERSALE_RETURNING, 200, details=ReturnDetails(tracking_number="TRK")),
    )
    assert state.details.reason == "damaged"
    assert state.details.tracking_number == "TRK"


def test_a_first_event_forbidden_for_its_type_is_rejected_without_a_return() -> None:
    only = ev(S.AFTERSALE_RETURNING, 100, rtype=T.REFUND_ONLY)
    folded = fold_events([only])
    assert folded.state is None
    assert verdict_of(folded, only).reason is RejectionReason.FORBIDDEN_FOR_TYPE


@pytest.mark.parametrize("current", list(S))
def test_every_direct_transition_is_a_one_step_path(current: S) -> None:
    for target in TRANSITIONS[current]:
        assert shortest_path(current, target, T.RETURN_AND_REFUND) == (target,)


def test_buyer_appeal_after_rejection_is_a_valid_transition() -> None:
    events = (ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_REJECT_APPLICATION, 200),
              ev(S.AFTERSALE_APPLYING, 300))
    assert state_after(*events).status is S.AFTERSALE_APPLYING
    assert [o for _, o in timeline(*events)] == [Outcome.APPLIED] * 3


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
    old = ev(S.AFTERSALE_BUYER_SHIPPED, 100, rtype=None)
    folded = fold_events([ev(S.AFTERSALE_SUCCESS, 500, rtype=T.REFUND_ONLY), old])
    assert verdict_of(folded, old).reason is RejectionReason.FORBIDDEN_FOR_TYPE
    assert folded.state is not None
    assert folded.state.status is S.AFTERSALE_SUCCESS


def test_folding_on_from_a_state_equals_folding_everything_again() -> None:
    head = [ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_RETURNING, 200)]
    tail = [ev(S.AFTERSALE_BUYER_SHIPPED, 300), ev(S.AFTERSALE_SUCCESS, 400)]
    on = fold(fold_events(head).state, [Fact.of(e) for e in tail])
    assert on.state == fold_events(head + tail).state
