"""The aftersale transition table (DOMAIN.md, "Valid transitions") and pure queries over it."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from contracts.statuses import ReturnStatus as S
from contracts.statuses import ReverseType

TRANSITIONS: Mapping[S, frozenset[S]] = {
    S.AFTERSALE_APPLYING: frozenset(
        {
            S.AFTERSALE_REJECT_APPLICATION,
            S.AFTERSALE_RETURNING,
            S.AFTERSALE_SUCCESS,
            S.CANCEL_SUCCESS,
            S.CLOSED,
        }
    ),
    S.AFTERSALE_REJECT_APPLICATION: frozenset(
        {S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING, S.AFTERSALE_SUCCESS, S.CLOSED}
    ),
    S.AFTERSALE_RETURNING: frozenset({S.AFTERSALE_BUYER_SHIPPED, S.CANCEL_SUCCESS, S.CLOSED}),
    S.AFTERSALE_BUYER_SHIPPED: frozenset({S.AFTERSALE_SELLER_REJECT_RECEIVE, S.AFTERSALE_SUCCESS}),
    S.AFTERSALE_SELLER_REJECT_RECEIVE: frozenset({S.AFTERSALE_SUCCESS, S.CLOSED}),
    S.AFTERSALE_SUCCESS: frozenset({S.COMPLETE}),
    S.COMPLETE: frozenset(),
    S.CLOSED: frozenset(),
    S.CANCEL_SUCCESS: frozenset(),
}

# The lifecycle order: how events of the same second are folded (update_time first, then this).
# Every valid transition but the buyer's appeal (REJECT_APPLICATION -> APPLYING) moves forward
# in it, so two same-second events that lead to each other fold in their likely real order.
LIFECYCLE_ORDER: tuple[S, ...] = (
    S.AFTERSALE_APPLYING,
    S.AFTERSALE_REJECT_APPLICATION,
    S.AFTERSALE_RETURNING,
    S.AFTERSALE_BUYER_SHIPPED,
    S.AFTERSALE_SELLER_REJECT_RECEIVE,
    S.AFTERSALE_SUCCESS,
    S.CANCEL_SUCCESS,
    S.CLOSED,
    S.COMPLETE,
)
LIFECYCLE_RANK: Mapping[S, int] = {status: rank for rank, status in enumerate(LIFECYCLE_ORDER)}

TERMINAL: frozenset[S] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# Statuses a REFUND_ONLY request never enters (the parcel exists only for RETURN_AND_REFUND).
RETURN_ONLY_STATUSES: frozenset[S] = frozenset(
    {S.AFTERSALE_RETURNING, S.AFTERSALE_BUYER_SHIPPED, S.AFTERSALE_SELLER_REJECT_RECEIVE}
)


def allowed_for_type(status: S, reverse_type: ReverseType | None) -> bool:
    """Whether a request of this reverse type may ever be in this status."""
    return not (reverse_type is not None and reverse_type != ReverseType.RETURN_AND_REFUND
                and status in RETURN_ONLY_STATUSES)


def shortest_path(
    current: S, target: S, reverse_type: ReverseType | None
) -> tuple[S, ...] | None:
    """The shortest chain of valid transitions from `current` to `target`, excluding `current`
    and ending with `target`; None when `target` is unreachable for this reverse type.

    A direct transition gives a one-element path; a longer path means the statuses before
    `target` were missed and are inferred. Same status gives None (no transition).
    """
    if current == target or not allowed_for_type(target, reverse_type):
        return None
    previous: dict[S, S] = {}
    queue: deque[S] = deque([current])
    while queue:
        node = queue.popleft()
        for nxt in sorted(TRANSITIONS[node]):  # sorted: deterministic among equal-length paths
            if nxt in previous or nxt == current or not allowed_for_type(nxt, reverse_type):
                continue
            previous[nxt] = node
            if nxt == target:
                path = [nxt]
                while path[-1] in previous and previous[path[-1]] != current:
                    path.append(previous[path[-1]])
                return tuple(reversed(path))
            queue.append(nxt)
    return None


def is_forward(current: S, target: S, reverse_type: ReverseType | None) -> bool:
    """Whether `target` lies ahead of `current` in the lifecycle."""
    return shortest_path(current, target, reverse_type) is not None
