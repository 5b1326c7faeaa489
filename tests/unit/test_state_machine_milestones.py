"""The milestones a return keeps for the insights (`contracts.read_model.Milestones`): when its
first applied event happened, when its first status after AFTERSALE_APPLYING came (and which),
and when it reached COMPLETE, in fold order, whatever order its events arrive in."""

from __future__ import annotations

import itertools

from contracts.messages import ReturnEvent
from contracts.read_model import Milestones
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from state_machine.batch import Delivery
from state_machine.domain import fold_events
from tests.unit.memory_read_model import MemoryReadModel
from tests.unit.test_state_machine_rules import T0, ev, state_after


def kept(*events: ReturnEvent) -> Milestones | None:
    return state_after(*events).milestones


def test_an_in_order_lifecycle_is_opened_decided_and_refunded() -> None:
    assert kept(
        ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_RETURNING, 200),
        ev(S.AFTERSALE_BUYER_SHIPPED, 300), ev(S.AFTERSALE_SUCCESS, 400), ev(S.COMPLETE, 500),
    ) == Milestones(opened_at=T0 + 100, decided_at=T0 + 200, decided_as=S.AFTERSALE_RETURNING,
                    refunded_at=T0 + 500)


def test_a_return_still_applying_is_only_opened() -> None:
    assert kept(ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_APPLYING, 150)) == Milestones(
        opened_at=T0 + 100)


def test_after_an_appeal_the_first_decision_stands() -> None:
    assert kept(
        ev(S.AFTERSALE_APPLYING, 0), ev(S.AFTERSALE_REJECT_APPLICATION, 100),
        ev(S.AFTERSALE_APPLYING, 200), ev(S.AFTERSALE_SUCCESS, 300),
    ) == Milestones(opened_at=T0, decided_at=T0 + 100,
                    decided_as=S.AFTERSALE_REJECT_APPLICATION)


def test_an_inferred_status_is_decided_at_the_time_of_the_event_that_implied_it() -> None:
    refund_only = T.REFUND_ONLY
    assert kept(ev(S.AFTERSALE_APPLYING, 0, rtype=refund_only),
                ev(S.COMPLETE, 300, rtype=refund_only)) == Milestones(
        opened_at=T0, decided_at=T0 + 300, decided_as=S.AFTERSALE_SUCCESS, refunded_at=T0 + 300)


def test_a_buyer_cancellation_is_kept_as_what_came_after_applying() -> None:
    assert kept(ev(S.AFTERSALE_APPLYING, 0), ev(S.CANCEL_SUCCESS, 50)) == Milestones(
        opened_at=T0, decided_at=T0 + 50, decided_as=S.CANCEL_SUCCESS)


def test_a_return_first_met_past_applying_is_decided_by_its_first_status() -> None:
    assert kept(ev(S.COMPLETE, 70)) == Milestones(
        opened_at=T0 + 70, decided_at=T0 + 70, decided_as=S.COMPLETE, refunded_at=T0 + 70)


def test_rejected_and_details_only_events_move_no_milestone() -> None:
    assert kept(
        ev(S.AFTERSALE_RETURNING, 0, rtype=T.REFUND_ONLY),  # forbidden for the type: rejected
        ev(S.AFTERSALE_APPLYING, 10, rtype=T.REFUND_ONLY),
        ev(S.AFTERSALE_APPLYING, 50, rtype=T.REFUND_ONLY),  # details only
        ev(S.CLOSED, 100, rtype=T.REFUND_ONLY),
        ev(S.COMPLETE, 200, rtype=T.REFUND_ONLY),  # out of a terminal status: rejected
    ) == Milestones(opened_at=T0 + 10, decided_at=T0 + 100, decided_as=S.CLOSED)


def test_same_second_events_are_decided_in_the_lifecycle_order() -> None:
    assert kept(ev(S.AFTERSALE_RETURNING, 60), ev(S.AFTERSALE_APPLYING, 60)) == Milestones(
        opened_at=T0 + 60, decided_at=T0 + 60, decided_as=S.AFTERSALE_RETURNING)


def test_a_late_event_moves_the_milestones_back_to_its_place() -> None:
    on_time = (ev(S.AFTERSALE_APPLYING, 100), ev(S.AFTERSALE_SUCCESS, 300))
    late = (ev(S.AFTERSALE_APPLYING, 0), ev(S.AFTERSALE_REJECT_APPLICATION, 50))
    assert kept(*on_time) == Milestones(opened_at=T0 + 100, decided_at=T0 + 300,
                                        decided_as=S.AFTERSALE_SUCCESS)
    assert kept(*on_time, *late) == Milestones(opened_at=T0, decided_at=T0 + 50,
                                               decided_as=S.AFTERSALE_REJECT_APPLICATION)


def test_every_arrival_order_one_event_a_batch_keeps_the_same_milestones() -> None:
    """All 120 orders of an appeal, a gap, a same-second pair and an invalid event, each
    consumed one record a batch: in-order extensions and late refolds alike."""
    events = [ev(S.AFTERSALE_APPLYING, 0), ev(S.AFTERSALE_REJECT_APPLICATION, 0),
              ev(S.AFTERSALE_APPLYING, 100), ev(S.COMPLETE, 200),  # SUCCESS inferred
              ev(S.AFTERSALE_RETURNING, 300)]  # after COMPLETE: rejected
    expected = fold_events(events).state
    assert expected is not None
    assert expected.milestones == Milestones(
        opened_at=T0, decided_at=T0, decided_as=S.AFTERSALE_REJECT_APPLICATION,
        refunded_at=T0 + 200)
    for order in itertools.permutations(events):
        model = MemoryReadModel()
        for offset, event in enumerate(order):
            model.apply([Delivery(EVENTS_TOPIC, 0, offset, event.model_dump_json().encode())])
        assert model.returns["shop1:r1"].state == expected, order
