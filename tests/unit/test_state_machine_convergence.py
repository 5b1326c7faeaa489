"""Convergence: whatever the order and however often events arrive, every return ends as it
would with in-order delivery, invalid events are never applied, nothing is counted twice.

Random valid lifecycles for many returns are put on one simulated partition shuffled, with
duplicates and invalid events among them, consumed in batches of random sizes, and some
batches delivered twice (a crash before the commit). Pure: the core rules and batch planning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent
from contracts.read_model import Outcome, ReturnState
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from contracts.transitions import RETURN_ONLY_STATUSES, TERMINAL, TRANSITIONS, allowed_for_type
from state_machine.batch import Delivery, Stored, decode_all, plan
from state_machine.domain import apply_events


@dataclass(frozen=True)
class Lifecycle:
    return_id: str
    reverse_type: T
    events: tuple[ReturnEvent, ...]


def _event(return_id: str, status: S, t: int, rtype: T | None) -> ReturnEvent:
    return ReturnEvent(
        shop_id="shop", return_id=return_id, order_id=f"o{return_id}", status=status,
        update_time=t, reverse_type=rtype, source=EventSource.WEBHOOK_202309,
        details=ReturnDetails(
            refund=Money(amount=Decimal(f"{t}.50"), currency="USD"),
            tracking_number=f"TRK{t}" if status in RETURN_ONLY_STATUSES else None,
        ),
    )


@st.composite
def lifecycles(draw: st.DrawFn, return_id: str) -> Lifecycle:
    rtype = draw(st.sampled_from([T.REFUND_ONLY, T.RETURN_AND_REFUND]))
    status, t = S.AFTERSALE_APPLYING, draw(st.integers(1_700_000_000, 1_700_100_000))
    events = [_event(return_id, status, t, rtype)]
    while status not in TERMINAL and draw(st.integers(0, 9)) > 1:
        options = sorted(s for s in TRANSITIONS[status] if allowed_for_type(s, rtype))
        status = draw(st.sampled_from(options))
        t += draw(st.integers(1, 3600))
        # a sync or webhook may omit the type: later events sometimes carry none
        events.append(_event(return_id, status, t, draw(st.sampled_from([rtype, None]))))
    return Lifecycle(return_id, rtype, tuple(events))


def _invalid(lifecycle: Lifecycle, rng: random.Random) -> list[ReturnEvent]:
    """Events no delivery order can make valid: a parcel status for a refund-only request."""
    if lifecycle.reverse_type is not T.REFUND_ONLY:
        return []
    t = rng.choice(lifecycle.events).update_time + rng.randint(-5, 5000)
    status = rng.choice(sorted(RETURN_ONLY_STATUSES))
    return [_event(lifecycle.return_id, status, t, T.REFUND_ONLY)]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True).flatmap(
        lambda ids: st.tuples(*(lifecycles(f"r{i}") for i in ids))
    ),
    st.randoms(use_true_random=False),
)
def test_any_delivery_order_converges_to_the_in_order_state(
    returns: tuple[Lifecycle, ...], rng: random.Random
) -> None:
    deliveries: list[ReturnEvent] = []
    invalid_ids: set[str] = set()
    for lifecycle in returns:
        deliveries += lifecycle.events
        deliveries += [e for e in lifecycle.events if rng.random() < 0.3]  # duplicates
        bad = _invalid(lifecycle, rng)
        invalid_ids |= {e.event_id for e in bad}
        deliveries += bad
    rng.shuffle(deliveries)
    records = [Delivery(EVENTS_TOPIC, 0, offset, event.model_dump_json().encode())
               for offset, event in enumerate(deliveries)]

    stored: dict[str, Stored] = {}
    position = 0
    rejected_ids: list[str] = []
    while position < len(records):
        size = rng.randint(1, 25)
        batch = records[position: position + size]
        result = plan(decode_all(batch), stored)
        if rng.random() < 0.2:  # crash before the commit: the same batch comes again
            for change in result.changes:
                stored[change.key] = Stored(change.state, change.partition, change.offset, 1)
            assert plan(decode_all(batch), stored).changes == [], "a redelivery changed state"
        for change in result.changes:
            stored[change.key] = Stored(change.state, change.partition, change.offset, 1)
        rejected_ids += [r.event.event_id for r in result.rejections if r.event]
        position += size

    assert set(rejected_ids) == invalid_ids  # every invalid event rejected, nothing else
    for lifecycle in returns:
        expected, _ = apply_events(None, list(lifecycle.events))
        assert expected is not None
        final: ReturnState = stored[f"shop:{lifecycle.return_id}"].state
        assert (final.status, final.update_time) == (expected.status, expected.update_time)
        assert final.reverse_type == lifecycle.reverse_type
        assert final.details == expected.details
        entries = [h.event_id for h in final.history if h.event_id is not None]
        assert len(entries) == len(set(entries)), "an event is in the history twice"
        lifecycle_ids = {e.event_id for e in lifecycle.events}
        assert lifecycle_ids <= set(entries), "an event was lost"
        delivered = sum(1 for e in deliveries if e.event_id in lifecycle_ids)
        assert final.duplicate_count == delivered - len(lifecycle_ids)
        applied = {h.event_id for h in final.history if h.outcome is Outcome.APPLIED}
        assert not applied & invalid_ids, "an invalid event was applied"
