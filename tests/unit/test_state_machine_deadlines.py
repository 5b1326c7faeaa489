"""TikTok's deadlines on a return (`details.next_actions`): kept while TikTok lists them,
cleared when it lists none or the return moves on without one, and exposed at top level so
"Needs action" can be read by equality and sorted by deadline."""

from __future__ import annotations

from contracts.deadlines import SellerAction, deadline_fields
from contracts.messages import EventSource, ReturnDetails
from contracts.statuses import ReturnStatus as S
from tests.unit.test_state_machine_rules import T0, ev, state_after

RESPOND = (SellerAction(action="SELLER_RESPOND_REFUND", deadline=T0 + 172_800),)
SYNC = EventSource.SYNC_202309


def with_actions(actions: tuple[SellerAction, ...] | None) -> ReturnDetails:
    return ReturnDetails(next_actions=actions)


def test_a_synced_deadline_is_kept_on_the_return() -> None:
    state = state_after(ev(S.AFTERSALE_APPLYING, 0, source=SYNC, details=with_actions(RESPOND)))
    assert state.details.next_actions == RESPOND


def test_a_webhook_of_the_same_status_that_knows_no_deadline_keeps_it() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 0, source=SYNC, details=with_actions(RESPOND)),
        ev(S.AFTERSALE_APPLYING, 10),
    )
    assert state.details.next_actions == RESPOND


def test_a_deadline_tiktok_no_longer_lists_is_cleared() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 0, source=SYNC, details=with_actions(RESPOND)),
        ev(S.AFTERSALE_APPLYING, 10, source=SYNC, details=with_actions(())),
    )
    assert state.details.next_actions == ()


def test_moving_on_without_a_deadline_clears_the_old_statuss_deadline() -> None:
    state = state_after(
        ev(S.AFTERSALE_APPLYING, 0, source=SYNC, details=with_actions(RESPOND)),
        ev(S.AFTERSALE_RETURNING, 10),  # a webhook: it says nothing of deadlines
    )
    assert not state.details.next_actions


def test_a_sync_snapshot_of_a_webhooks_change_brings_its_deadline_in_any_order() -> None:
    webhook = ev(S.AFTERSALE_BUYER_SHIPPED, 10)
    received = (SellerAction(action="SELLER_RESPOND_RECEIVE_PACKAGE", deadline=T0 + 99_999),)
    snapshot = ev(S.AFTERSALE_BUYER_SHIPPED, 10, source=SYNC, details=with_actions(received))
    first = ev(S.AFTERSALE_APPLYING, 0, source=SYNC, details=with_actions(RESPOND))
    assert state_after(first, webhook, snapshot).details.next_actions == received
    assert state_after(snapshot, first, webhook).details.next_actions == received


def test_only_a_return_with_a_deadline_is_due_and_sorted_by_its_soonest() -> None:
    later = SellerAction(action="B", deadline=T0 + 500)
    sooner = SellerAction(action="A", deadline=T0 + 100)
    assert deadline_fields((later, sooner)) == {"action_due": True,
                                                "action_deadline": T0 + 100}
    assert deadline_fields(()) == {}
    assert deadline_fields(None) == {}
