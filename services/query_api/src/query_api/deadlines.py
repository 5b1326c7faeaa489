"""Pure query building for "Needs action": the returns waiting on the seller, soonest TikTok
deadline first, with keyset cursors over (deadline, _id). No I/O.

Only returns with a deadline carry `action_due: true` (`contracts.deadlines.deadline_fields`):
an equality FerretDB pushes down to its index, and on MongoDB the `shop_action_due` /
`action_due` indexes serve the filter and the sort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.deadlines import ACTION_DEADLINE, ACTION_DUE
from query_api.queries import BadCursor, decode_token, encode_token

DEADLINE_CURSOR_PARTS = 3  # ["d", deadline, _id]

NEEDS_ACTION_SORT: tuple[tuple[str, int], ...] = ((ACTION_DEADLINE, 1), ("_id", 1))


@dataclass(frozen=True)
class DeadlineCursor:
    """Position after the last return of a page: its (deadline, _id)."""

    deadline: int
    id: str


@dataclass(frozen=True)
class NeedsActionParams:
    shop_id: str | None = None
    due_before: int | None = None  # only deadlines before this (unix s), e.g. now + 24 h
    limit: int = 50
    after: DeadlineCursor | None = None


def encode_deadline_cursor(cursor: DeadlineCursor) -> str:
    return encode_token(["d", cursor.deadline, cursor.id])


def decode_deadline_cursor(token: str) -> DeadlineCursor:
    value = decode_token(token)
    if (not isinstance(value, list) or len(value) != DEADLINE_CURSOR_PARTS or value[0] != "d"
            or type(value[1]) is not int or not isinstance(value[2], str)):
        raise BadCursor("cursor is not a token returned by this API")
    return DeadlineCursor(deadline=value[1], id=value[2])


def needs_action_filter(params: NeedsActionParams) -> dict[str, Any]:
    query: dict[str, Any] = {ACTION_DUE: True}
    if params.shop_id is not None:
        query["shop_id"] = str(params.shop_id)
    if params.due_before is not None:
        query[ACTION_DEADLINE] = {"$lt": int(params.due_before)}
    if params.after is not None:
        d, last_id = int(params.after.deadline), str(params.after.id)
        query["$or"] = [{ACTION_DEADLINE: {"$gt": d}},
                        {ACTION_DEADLINE: d, "_id": {"$gt": last_id}}]
    return query


def next_deadline_cursor(docs: Sequence[Mapping[str, Any]], limit: int) -> str | None:
    """The cursor after `docs[limit - 1]` when a look-ahead document came back."""
    if len(docs) <= limit:
        return None
    last = docs[limit - 1]
    return encode_deadline_cursor(DeadlineCursor(int(last[ACTION_DEADLINE]), str(last["_id"])))
