"""The rules for applying an event to a return (DOMAIN.md, rules 1-9), as pure functions.

No I/O here: the adapters load a `ReturnState`, fold events into it with `apply_event`, and
store the result. Everything a reader needs to know about how a return's status changes is here
and in `contracts.transitions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.messages import RejectionReason, ReturnDetails, ReturnEvent
from contracts.read_model import HistoryEntry, Outcome, ReturnState
from contracts.statuses import ReverseType
from contracts.transitions import allowed_for_type, shortest_path


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    state: ReturnState | None  # None only when a first event was rejected
    rejection: tuple[RejectionReason, str] | None = None


def merge_details(state: ReturnState, event: ReturnEvent) -> dict[str, object]:
    """Each detail (tracking number, refund, ...) holds the value of the newest event that
    knew it: an event's value replaces ours unless ours came from a newer change. Fields the
    event does not know are kept. Order-independent, so late or repeated events converge."""
    details, as_of = {}, dict(state.details_as_of)
    for name, value in event.details:
        if value is not None and event.update_time >= as_of.get(name, -1):
            details[name] = value
            as_of[name] = event.update_time
    return {"details": state.details.model_copy(update=details), "details_as_of": as_of}


def _entry(event: ReturnEvent, outcome: Outcome, **extra: object) -> HistoryEntry:
    has_details = event.details != ReturnDetails()
    return HistoryEntry(
        event_id=event.event_id,
        status=event.status,
        update_time=event.update_time,
        outcome=outcome,
        source=event.source,
        notification_id=event.notification_id,
        actor=event.actor,
        observed_at=event.observed_at,
        details=event.details if has_details else None,
        **extra,
    )


def _reject(
    state: ReturnState | None, event: ReturnEvent, reason: RejectionReason, why: str
) -> Decision:
    if state is None:
        return Decision(Outcome.REJECTED, None, (reason, why))
    entry = _entry(event, Outcome.REJECTED, reason=reason, note=why)
    new_state = state.model_copy(
        update={
            "history": (*state.history, entry),
            "anomaly": True,
            "last_seen_at": max(state.last_seen_at, event.observed_at),
        }
    )
    return Decision(Outcome.REJECTED, new_state, (reason, why))


def _type_problem(event: ReturnEvent, reverse_type: ReverseType | None) -> str | None:
    if not allowed_for_type(event.status, reverse_type):
        return f"{reverse_type} request can never be {event.status}"
    return None


def apply_event(state: ReturnState | None, event: ReturnEvent) -> Decision:
    """Apply one event to a return's state (None when the return has never been seen)."""
    if state is None:  # rule 3: the first event is accepted whatever its status
        problem = _type_problem(event, event.reverse_type)
        if problem:
            return _reject(None, event, RejectionReason.FORBIDDEN_FOR_TYPE, problem)
        return Decision(
            Outcome.APPLIED,
            ReturnState(
                shop_id=event.shop_id,
                return_id=event.return_id,
                order_id=event.order_id,
                status=event.status,
                reverse_type=event.reverse_type,
                update_time=event.update_time,
                details=event.details,
                details_as_of={
                    name: event.update_time for name, value in event.details if value is not None
                },
                history=(_entry(event, Outcome.APPLIED),),
                first_seen_at=event.observed_at,
                last_seen_at=event.observed_at,
            ),
        )

    if event.reverse_type is not None and state.reverse_type not in (None, event.reverse_type):
        return _reject(
            state, event, RejectionReason.INVALID_EVENT,
            f"reverse type {event.reverse_type} differs from the return's {state.reverse_type}",
        )
    # The type of a request never changes: learn it from any event that carries it.
    reverse_type = state.reverse_type or event.reverse_type
    seen: dict[str, object] = {
        "last_seen_at": max(state.last_seen_at, event.observed_at),
        "reverse_type": reverse_type,
    }
    if event.event_id in state.known_event_ids:  # rule 2: seen before, delivered again
        # A sync may repeat a webhook's change with the details the webhook lacked: keep them.
        return Decision(
            Outcome.DUPLICATE,
            state.model_copy(
                update={
                    "duplicate_count": state.duplicate_count + 1,
                    **merge_details(state, event),
                    **seen,
                }
            ),
        )


    problem = _type_problem(event, reverse_type)
    if problem:  # rule 7, whatever its time: such a request can never be in that status
        return _reject(state, event, RejectionReason.FORBIDDEN_FOR_TYPE, problem)

    if event.status == state.status:
        if event.update_time < state.update_time:  # rule 4
            return _stale(state, event, seen)
        # rule 8: same status, newer time or new details
        return Decision(
            Outcome.DETAILS_UPDATED,
            state.model_copy(
                update={
                    "update_time": event.update_time,
                    **merge_details(state, event),
                    "history": (*state.history, _entry(event, Outcome.DETAILS_UPDATED)),
                    **seen,
                }
            ),
        )

    forward = shortest_path(state.status, event.status, reverse_type)
    if event.update_time < state.update_time:  # rule 4: older than what we know
        return _stale(state, event, seen)
    if (
        event.update_time == state.update_time
        and forward is None
        and shortest_path(event.status, state.status, reverse_type) is not None
    ):  # rule 4: the same second, and the move would go backwards
        return _stale(state, event, seen)
    if forward is None:  # rule 7
        return _reject(
            state, event, RejectionReason.INVALID_TRANSITION,
            f"{state.status} cannot become {event.status}",
        )

    # rules 5 and 6: a valid transition, or a gap bridged by inferred intermediate statuses
    inferred = tuple(
        HistoryEntry(
            event_id=None, status=status, update_time=event.update_time, outcome=Outcome.INFERRED,
            note=f"missed; implied by {event.event_id}",
        )
        for status in forward[:-1]
    )
    return Decision(
        Outcome.APPLIED,
        state.model_copy(
            update={
                "status": event.status,
                "update_time": event.update_time,
                **merge_details(state, event),
                "history": (*state.history, *inferred, _entry(event, Outcome.APPLIED)),
                **seen,
            }
        ),
    )


def _stale(state: ReturnState, event: ReturnEvent, seen: dict[str, object]) -> Decision:
    return Decision(
        Outcome.STALE,
        state.model_copy(
            update={
                "history": (*state.history, _entry(event, Outcome.STALE)),
                **merge_details(state, event),  # fills what we lacked, never newer values
                **seen,
            }
        ),
    )


def apply_events(
    state: ReturnState | None, events: list[ReturnEvent]
) -> tuple[ReturnState | None, list[Decision]]:
    """Fold events of one return, in order, into its state."""
    decisions = []
    for event in events:
        decision = apply_event(state, event)
        decisions.append(decision)
        state = decision.state
    return state, decisions
