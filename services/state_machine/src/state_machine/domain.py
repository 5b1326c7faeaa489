"""The rules for applying events to a return (DOMAIN.md, rules 1-9), as pure functions.

A return's state is a function of the *set* of its distinct events, never of the order they
arrived in: its events are folded in one total order, `order_key` (update_time, then the
lifecycle order of `contracts.transitions.LIFECYCLE_ORDER`; the two identify an event of a
return). An event that arrives in order extends the fold; one that arrives late is put in its
place and the return's events are folded again, which may change what earlier events came to
(an applied event may become rejected, or the reverse).

No I/O here: the adapters load what is stored, call `fold`, and store the result. Everything a
reader needs to know about how a return's status changes is here and in
`contracts.transitions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TypeVar

from contracts.messages import RejectionReason, ReturnDetails, ReturnEvent
from contracts.read_model import Outcome, ReturnState
from contracts.statuses import ReturnStatus, ReverseType
from contracts.transitions import LIFECYCLE_RANK, allowed_for_type, shortest_path

_T = TypeVar("_T")
OrderKey = tuple[int, int]
BEFORE_ALL: OrderKey = (-1, -1)


def order_key(event: ReturnEvent) -> OrderKey:
    """Where an event stands in its return's fold. Unique per return: the event id is
    (return, status, update_time) and the rank is a function of the status."""
    return event.update_time, LIFECYCLE_RANK[event.status]


@dataclass(frozen=True)
class Fact:
    """One distinct event of a return (rule 1), merged over every delivery of it."""

    event: ReturnEvent
    deliveries: int
    last_observed_at: datetime

    @classmethod
    def of(cls, event: ReturnEvent, deliveries: int = 1) -> Fact:
        return cls(event, deliveries, event.observed_at)

    @cached_property
    def key(self) -> OrderKey:
        return order_key(self.event)


def _pick(a: _T | None, b: _T | None) -> _T | None:
    """The known one of two values; of two different known ones, the same one whatever the
    order they come in."""
    if a is None or b is None or a == b:
        return a if b is None else b
    return max(a, b, key=repr)


def merge(a: Fact, b: Fact) -> Fact:
    """Two deliveries of one event (a webhook and a sync reporting the same change): nothing
    either knew is lost, and the result does not depend on which came first."""
    first, second = sorted((a.event, b.event), key=lambda e: (e.observed_at, e.source))
    details = {
        name: _pick(getattr(first.details, name), getattr(second.details, name))
        for name in ReturnDetails.model_fields
    }
    event = first.model_copy(update={
        "order_id": min(first.order_id, second.order_id),
        "reverse_type": _pick(first.reverse_type, second.reverse_type),
        "notification_id": _pick(first.notification_id, second.notification_id),
        "actor": first.actor if first.actor is not None else second.actor,
        "details": ReturnDetails(**details),
    })
    return Fact(event, a.deliveries + b.deliveries, max(a.last_observed_at, b.last_observed_at))


def merge_all(facts: Iterable[Fact]) -> dict[str, Fact]:
    """Facts by event id, deliveries of the same event merged."""
    merged: dict[str, Fact] = {}
    for fact in facts:
        known = merged.get(fact.event.event_id)
        merged[fact.event.event_id] = fact if known is None else merge(known, fact)
    return merged


@dataclass(frozen=True)
class Verdict:
    """What the fold made of one event (rule 9: every distinct event keeps one)."""

    outcome: Outcome
    inferred: tuple[ReturnStatus, ...] = ()  # statuses missed just before this one (rule 6)
    reason: RejectionReason | None = None
    note: str | None = None


@dataclass(frozen=True)
class Folded:
    state: ReturnState | None  # None: no event of the return could be applied
    verdicts: dict[str, Verdict]  # by event id, for the facts folded in this call


def reverse_type_of(facts: Iterable[Fact]) -> ReverseType | None:
    """A request's type never changes: it is the one of its first event (in fold order) that
    names one. Facts must be given in fold order."""
    return next((f.event.reverse_type for f in facts if f.event.reverse_type), None)


def merge_details(
    state: ReturnState, event: ReturnEvent, *, status_changes: bool = False
) -> dict[str, object]:
    """Each detail (tracking number, refund, ...) holds the value of the newest event that
    knew it; fields an event does not know are kept (rule 8). TikTok's deadlines
    (`next_actions`) belong to the status they were given in: a move to another status that
    does not bring its own clears them, as does an event that lists none (`()`)."""
    details: dict[str, object] = {}
    as_of = dict(state.details_as_of)
    for name, value in event.details:
        if value is not None and event.update_time >= as_of.get(name, -1):
            details[name] = value
            as_of[name] = event.update_time
    if status_changes and event.details.next_actions is None and state.details.next_actions:
        details["next_actions"] = None
        as_of["next_actions"] = event.update_time
    return {"details": state.details.model_copy(update=details), "details_as_of": as_of}


def _first(event: ReturnEvent, reverse_type: ReverseType | None) -> ReturnState:
    """Rule 3: the first event is accepted whatever its status."""
    return ReturnState(
        shop_id=event.shop_id, return_id=event.return_id, order_id=event.order_id,
        status=event.status, reverse_type=reverse_type, update_time=event.update_time,
        details=event.details,
        details_as_of={name: event.update_time for name, value in event.details
                       if value is not None},
        first_seen_at=event.observed_at, last_seen_at=event.observed_at,
    )


def _rejected(reason: RejectionReason, note: str) -> Verdict:
    return Verdict(Outcome.REJECTED, reason=reason, note=note)


def step(
    state: ReturnState | None, event: ReturnEvent, reverse_type: ReverseType | None
) -> tuple[ReturnState | None, Verdict]:
    """Apply one event, next in fold order, to a return of the given type."""
    if event.reverse_type is not None and reverse_type not in (None, event.reverse_type):
        return state, _rejected(
            RejectionReason.INVALID_EVENT,
            f"reverse type {event.reverse_type} differs from the return's {reverse_type}")
    if not allowed_for_type(event.status, reverse_type):  # rule 7, whatever its time
        return state, _rejected(RejectionReason.FORBIDDEN_FOR_TYPE,
                                f"{reverse_type} request can never be {event.status}")
    if state is None:
        return _first(event, reverse_type), Verdict(Outcome.APPLIED)
    if event.status == state.status:  # rule 8: same status, newer time or new details
        moved = state.model_copy(update={"update_time": event.update_time,
                                         **merge_details(state, event)})
        return moved, Verdict(Outcome.DETAILS_UPDATED)
    # Rule 4 (stale) never fires here: in fold order no event is older than the state, and a
    # same-second event that leads back folds before the one it leads to (the lifecycle
    # order), so an event that arrives late takes its place instead of being set aside.
    forward = shortest_path(state.status, event.status, reverse_type)
    if forward is None:  # rule 7
        return state, _rejected(RejectionReason.INVALID_TRANSITION,
                                f"{state.status} cannot become {event.status}")
    # rules 5 and 6: a valid transition, or a gap bridged by inferred intermediate statuses
    moved = state.model_copy(update={"status": event.status, "update_time": event.update_time,
                                     **merge_details(state, event, status_changes=True)})
    return moved, Verdict(Outcome.APPLIED, inferred=forward[:-1])


def fold(
    state: ReturnState | None, facts: Sequence[Fact], reverse_type: ReverseType | None = None
) -> Folded:
    """Fold facts, in fold order, onto a state that holds every earlier event of the return
    (None: fold all of them). `reverse_type` is the return's, when `state` is None and the
    facts are not all its events; by default the facts' own."""
    facts = sorted(facts, key=lambda f: f.key)
    if state is not None:
        reverse_type = state.reverse_type
    elif reverse_type is None:
        reverse_type = reverse_type_of(facts)
    verdicts: dict[str, Verdict] = {}
    for fact in facts:
        state, verdicts[fact.event.event_id] = step(state, fact.event, reverse_type)
    if state is not None and facts:
        state = _bookkeeping(state, facts, verdicts)
    return Folded(state, verdicts)


def _bookkeeping(state: ReturnState, facts: Sequence[Fact],
                 verdicts: dict[str, Verdict]) -> ReturnState:
    """Duplicate deliveries (rule 2), when the return was first and last seen, and whether an
    event of it was rejected: sums, minima and maxima, the same in any order."""
    return state.model_copy(update={
        "duplicate_count": state.duplicate_count + sum(f.deliveries - 1 for f in facts),
        "first_seen_at": min(state.first_seen_at, *(f.event.observed_at for f in facts)),
        "last_seen_at": max(state.last_seen_at, *(f.last_observed_at for f in facts)),
        "anomaly": state.anomaly or any(v.outcome is Outcome.REJECTED
                                        for v in verdicts.values()),
    })


def fold_events(events: Iterable[ReturnEvent]) -> Folded:
    """Every delivery of a return's events, in any order, folded: the reference result."""
    return fold(None, list(merge_all(Fact.of(e) for e in events).values()))
