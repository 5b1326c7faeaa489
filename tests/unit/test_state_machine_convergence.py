"""Convergence: a return's state (its milestones included), the outcome of each of its events,
its anomaly flag, the status counts and the rejections are a function of the set of its
distinct events, whatever
order they are delivered in, however often, in batches of any size, with batches redelivered
after a crash and crashes between any two writes.

Hypothesis generates returns of both reverse types through appeal cycles, gaps (missed
events), several events in one second, both API generations (webhook and sync deliveries of
the same change, with different details), and invalid events at any position (the newest
included); they are put on one partition shuffled and consumed through the real batch planner
(state_machine.batch) over an in-memory store. The reference is the fold of each return's
events in order (`fold_events`); the milestones a return keeps are also those the insights
read from its stored history (`query_api.insights.aggregate.milestones`). Pure: no servers.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent
from contracts.read_model import DAY_S, Milestones, Outcome, bucket_start
from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType as T
from contracts.topics import EVENTS_TOPIC
from contracts.transitions import (
    LIFECYCLE_RANK,
    RETURN_ONLY_STATUSES,
    TERMINAL,
    TRANSITIONS,
    allowed_for_type,
)
from query_api.insights.aggregate import HistoryRow, milestones_of
from state_machine.batch import Delivery, StoredEvent
from state_machine.domain import fold_events
from tests.unit.memory_read_model import Crash, MemoryReadModel

SHOP = "shop"
OBSERVED = datetime(2025, 1, 1, tzinfo=UTC)
SOURCES = (EventSource.WEBHOOK_202309, EventSource.WEBHOOK_LEGACY,
           EventSource.SYNC_202309, EventSource.SYNC_LEGACY)


@dataclass(frozen=True)
class Lifecycle:
    return_id: str
    events: tuple[ReturnEvent, ...]  # every delivery, duplicates and invalid events included


def _event(draw: st.DrawFn, return_id: str, status: S, t: int, rtype: T | None) -> ReturnEvent:
    source = draw(st.sampled_from(SOURCES))
    synced = source in (EventSource.SYNC_202309, EventSource.SYNC_LEGACY)
    return ReturnEvent(
        shop_id=SHOP, return_id=return_id, order_id=f"o{return_id}", status=status,
        update_time=t, reverse_type=rtype, source=source,
        observed_at=OBSERVED + timedelta(seconds=draw(st.integers(0, 10_000))),
        details=ReturnDetails(
            refund=Money(amount=Decimal(f"{t % 1000}.50"), currency="USD") if synced else None,
            tracking_number=f"TRK{t}" if status in RETURN_ONLY_STATUSES and synced else None,
            reason=draw(st.sampled_from([None, "damaged", "wrong item"])),
        ),
    )


def _invalid(draw: st.DrawFn, return_id: str, rtype: T, times: list[int]) -> ReturnEvent:
    """An event the lifecycle cannot contain: out of a terminal status, a parcel status for a
    refund-only request, or another type; at any time, the newest included."""
    t = draw(st.sampled_from([*times, max(times) + draw(st.integers(1, 5000))]))
    kind = draw(st.sampled_from(["terminal", "parcel", "type"]))
    if kind == "parcel" and rtype is T.REFUND_ONLY:
        return _event(draw, return_id, draw(st.sampled_from(sorted(RETURN_ONLY_STATUSES))), t,
                      draw(st.sampled_from([rtype, None])))
    if kind == "type":
        other = T.REFUND_ONLY if rtype is T.RETURN_AND_REFUND else T.RETURN_AND_REFUND
        return _event(draw, return_id, draw(st.sampled_from(sorted(S))), t, other)
    return _event(draw, return_id, S.AFTERSALE_APPLYING, t, draw(st.sampled_from([rtype, None])))


@st.composite
def lifecycles(draw: st.DrawFn, return_id: str) -> Lifecycle:
    rtype = draw(st.sampled_from([T.REFUND_ONLY, T.RETURN_AND_REFUND]))
    status, t = S.AFTERSALE_APPLYING, draw(st.integers(1_700_000_000, 1_700_100_000))
    walk = [(status, t)]
    while status not in TERMINAL and draw(st.integers(0, 9)) > 1:
        status = draw(st.sampled_from(sorted(s for s in TRANSITIONS[status]
                                             if allowed_for_type(s, rtype))))
        t += draw(st.sampled_from([0, 1, 60, 3600]))  # 0: several events in one second
        walk.append((status, t))
    kept = [step for i, step in enumerate(walk)  # gaps: some events are never delivered
            if i == 0 or draw(st.integers(0, 9)) > 1]
    events = [_event(draw, return_id, s, t, draw(st.sampled_from([rtype, rtype, None])))
              for s, t in kept]
    events += [_event(draw, return_id, e.status, e.update_time, e.reverse_type)  # duplicates,
               for e in events if draw(st.integers(0, 9)) < 3]  # e.g. a sync after a webhook
    times = [t for _, t in kept]
    events += [_invalid(draw, return_id, rtype, times) for _ in range(draw(st.integers(0, 2)))]
    return Lifecycle(return_id, tuple(events))


def _history_milestones(key: str, history: dict[str, StoredEvent]) -> Milestones | None:
    """What the insights would read from the stored history of a return."""
    applied = [HistoryRow(key, se.fact.event.update_time, LIFECYCLE_RANK[se.fact.event.status],
                          se.fact.event.status, se.verdict.inferred)
               for se in history.values() if se.verdict.outcome is Outcome.APPLIED]
    return milestones_of(applied) if applied else None


def _deliver(model: MemoryReadModel, records: list[Delivery], rng: random.Random) -> None:
    """Consume the partition in batches of random sizes; sometimes crash between two writes
    or before the commit, and take the batch again from the last commit (of another size)."""
    committed = 0
    while committed < len(records):
        batch = records[committed: committed + rng.randint(1, 25)]
        crash = rng.choice(["", "", "", "counts", "events", "published", "commit"])
        try:
            model.apply(batch, crash_after=crash if crash != "commit" else "")
        except Crash:
            continue  # nothing committed: the next batch starts at the same offset
        if crash != "commit":
            committed += len(batch)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=8, unique=True).flatmap(
        lambda ids: st.tuples(*(lifecycles(f"r{i}") for i in ids))
    ),
    st.randoms(use_true_random=False),
)
def test_any_delivery_order_converges_to_the_in_order_result(
    returns: tuple[Lifecycle, ...], rng: random.Random
) -> None:
    deliveries = [e for lifecycle in returns for e in lifecycle.events]
    rng.shuffle(deliveries)
    records = [Delivery(EVENTS_TOPIC, 0, offset, event.model_dump_json().encode())
               for offset, event in enumerate(deliveries)]
    model = MemoryReadModel()
    _deliver(model, records, rng)

    expected_counts: Counter[str] = Counter()
    expected_days: Counter[tuple[int, str]] = Counter()
    expected_rejected: set[str] = set()
    for lifecycle in returns:
        key = f"{SHOP}:{lifecycle.return_id}"
        expected = fold_events(lifecycle.events)
        stored = model.returns.get(key)
        assert (stored.state if stored else None) == expected.state
        history = model.events[key]
        assert {eid: se.verdict for eid, se in history.items()} == expected.verdicts
        assert (stored.state.milestones if stored else None) == _history_milestones(key, history)
        assert {eid: se.fact.deliveries for eid, se in history.items()} == Counter(
            e.event_id for e in lifecycle.events)
        if expected.state is not None:
            expected_counts[expected.state.status.value] += 1
            expected_days[(bucket_start(expected.state.update_time, DAY_S),
                           expected.state.status.value)] += 1
            assert expected.state.anomaly == any(
                v.outcome is Outcome.REJECTED for v in expected.verdicts.values())
        expected_rejected |= {eid for eid, v in expected.verdicts.items()
                              if v.outcome is Outcome.REJECTED}

    assert model.status_counts(SHOP) == expected_counts
    assert model.day_counts(SHOP) == expected_days
    standing = {r.event.event_id for r in model.rejections.values()
                if r.event is not None and not r.withdrawn}
    assert standing == expected_rejected
