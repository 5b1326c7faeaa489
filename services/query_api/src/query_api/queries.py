"""Pure query building for the returns list: MongoDB filter and sort, keyset cursors.

No I/O here. Every value a caller supplies ends up as an *equality or comparison value*
(an enum member, an int or a str), never as a key or an operator, so a query parameter cannot
inject MongoDB operators.

Pagination is keyset pagination over (update_time desc, _id desc): `_id` is unique, so the
order is total and paging never skips or repeats a return, even when many share an update_time.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.messages import RejectionReason, return_key
from contracts.statuses import STATUS_TABS, ReturnStatus, ReverseType

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_LENGTH = 1024

# Newest update first; ties broken by _id so the order is total (matches RETURNS_INDEXES).
LIST_SORT: tuple[tuple[str, int], ...] = (("update_time", -1), ("_id", -1))


class BadCursor(ValueError):
    """A cursor that this API did not produce (or that was altered)."""


# the parts of a cursor token: [update_time, _id]; a rejection's: ["r", rejected_at, _id]
CURSOR_PARTS = 2
REJECTION_CURSOR_PARTS = 3


@dataclass(frozen=True)
class Cursor:
    """Position after the last item of a page: the (update_time, _id) of that item."""

    update_time: int
    id: str


@dataclass(frozen=True)
class ListParams:
    """Validated parameters of the returns list."""

    shop_id: str | None = None
    statuses: tuple[ReturnStatus, ...] = ()
    reverse_type: ReverseType | None = None
    order_id: str | None = None
    return_id: str | None = None
    search: str | None = None  # an order id OR a return id, exactly
    anomaly: bool | None = None
    updated_from: int | None = None  # inclusive, unix seconds
    updated_to: int | None = None  # exclusive, unix seconds
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")


def encode_token(value: list[Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> Any:
    if not token or len(token) > MAX_CURSOR_LENGTH:
        raise BadCursor("cursor is empty or too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        return json.loads(raw)
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise BadCursor("cursor is not a token returned by this API") from exc


def encode_cursor(cursor: Cursor) -> str:
    """Opaque, URL-safe token: unpadded urlsafe base64 of JSON `[update_time, _id]`."""
    return encode_token([cursor.update_time, cursor.id])


def decode_cursor(token: str) -> Cursor:
    """Inverse of `encode_cursor`; raises `BadCursor` for anything it did not produce."""
    value = decode_token(token)
    if (
        not isinstance(value, list)
        or len(value) != CURSOR_PARTS
        or type(value[0]) is not int  # bool is an int subclass: refuse it
        or not isinstance(value[1], str)
    ):
        raise BadCursor("cursor is not a token returned by this API")
    return Cursor(update_time=value[0], id=value[1])


def build_filter(params: ListParams) -> dict[str, Any]:
    """The MongoDB filter selecting the page's returns (before `limit`)."""
    query = build_match(params)
    if params.after is not None:
        t, last_id = int(params.after.update_time), str(params.after.id)
        after = [{"update_time": {"$lt": t}}, {"update_time": t, "_id": {"$lt": last_id}}]
        if "$or" in query:  # the search's $or: both must hold
            query["$and"] = [{"$or": query.pop("$or")}, {"$or": after}]
        else:
            query["$or"] = after
    return query


def build_match(params: ListParams) -> dict[str, Any]:
    """The filter of the list without its page position: also what the CSV export selects.

    Hot filters stay top-level equalities (FerretDB v1 pushes those down to PostgreSQL). The
    search `q` is two equality alternatives (order id, return id), never a regex.
    """
    query: dict[str, Any] = {}
    if params.shop_id is not None:
        query["shop_id"] = str(params.shop_id)
    statuses = list(dict.fromkeys(params.statuses))  # de-duplicated, order kept
    if len(statuses) == 1:
        # Plain equality: FerretDB v1 pushes top-level equality down to PostgreSQL, not $in.
        query["status"] = statuses[0].value
    elif statuses:
        query["status"] = {"$in": [s.value for s in statuses]}
    if params.reverse_type is not None:
        query["reverse_type"] = params.reverse_type.value
    if params.anomaly is not None:
        query["anomaly"] = bool(params.anomaly)
    query.update(_identity_match(params))
    time_range: dict[str, int] = {}
    if params.updated_from is not None:
        time_range["$gte"] = int(params.updated_from)
    if params.updated_to is not None:
        time_range["$lt"] = int(params.updated_to)
    if time_range:
        query["update_time"] = time_range
    return query


def _identity_match(params: ListParams) -> dict[str, Any]:
    """The order id, return id and search filters; a return id within a shop is the primary
    key, one exact lookup."""
    query: dict[str, Any] = {}
    shop_id = None if params.shop_id is None else str(params.shop_id)
    if params.order_id is not None:
        query["order_id"] = str(params.order_id)
    if params.return_id is not None:
        if shop_id is not None:
            query["_id"] = return_key(shop_id, str(params.return_id))
        else:
            query["return_id"] = str(params.return_id)
    if params.search is not None:
        text = str(params.search)
        by_return: dict[str, str] = (
            {"_id": return_key(shop_id, text)} if shop_id is not None else {"return_id": text}
        )
        query["$or"] = [{"order_id": text}, by_return]
    return query


def build_sort() -> list[tuple[str, int]]:
    return list(LIST_SORT)


def next_cursor(docs: Sequence[Mapping[str, Any]], limit: int) -> str | None:
    """Cursor for the page after `docs` when `docs` holds `limit + 1` documents (one look-ahead).

    The caller fetches `limit + 1` documents and shows the first `limit`; a next page exists
    exactly when the look-ahead document came back.
    """
    if len(docs) <= limit:
        return None
    last = docs[limit - 1]
    return encode_cursor(Cursor(update_time=int(last["update_time"]), id=str(last["_id"])))


def build_count_pipeline(shop_id: str | None) -> list[dict[str, Any]]:
    """Aggregation counting returns per status (optionally of one shop)."""
    pipeline: list[dict[str, Any]] = []
    if shop_id is not None:
        pipeline.append({"$match": {"shop_id": str(shop_id)}})
    pipeline.append({"$group": {"_id": "$status", "n": {"$sum": 1}}})
    return pipeline


def counts_by_status(groups: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """`{"ALL": n, <every ReturnStatus>: n}` from `$group` output; absent statuses count 0.

    "ALL" counts every return, including any whose stored status this version does not know.
    """
    by_status = {str(g["_id"]): int(g["n"]) for g in groups}
    counts = {"ALL": sum(by_status.values())}
    ordered = [status for status, _label in STATUS_TABS]
    ordered += [status for status in ReturnStatus if status not in ordered]
    for status in ordered:  # the dashboard's tab order
        counts[status.value] = by_status.get(status.value, 0)
    return counts


# ---------------------------------------------------------------------------- rejections

# Newest rejection first, ties broken by _id (matches REJECTIONS_INDEXES). `rejected_at` is
# stored as the ISO-8601 UTC string of `RejectedEvent.model_dump(mode="json")`, which sorts
# chronologically as text (to the second; within one second a time without a fraction sorts
# after one with a fraction, a harmless imprecision).
REJECTIONS_SORT: tuple[tuple[str, int], ...] = (("rejected_at", -1), ("_id", -1))


@dataclass(frozen=True)
class RejectionCursor:
    """Position after the last rejection of a page: its (rejected_at, _id)."""

    rejected_at: str
    id: str


@dataclass(frozen=True)
class RejectionParams:
    shop_id: str | None = None
    reason: RejectionReason | None = None
    limit: int = DEFAULT_LIMIT
    after: RejectionCursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")


def encode_rejection_cursor(cursor: RejectionCursor) -> str:
    """Opaque token: unpadded urlsafe base64 of JSON `["r", rejected_at, _id]`."""
    return encode_token(["r", cursor.rejected_at, cursor.id])


def decode_rejection_cursor(token: str) -> RejectionCursor:
    value = decode_token(token)
    if (
        not isinstance(value, list)
        or len(value) != REJECTION_CURSOR_PARTS
        or value[0] != "r"
        or not isinstance(value[1], str)
        or not isinstance(value[2], str)
    ):
        raise BadCursor("cursor is not a token returned by this API")
    return RejectionCursor(rejected_at=value[1], id=value[2])


def build_rejection_filter(params: RejectionParams) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if params.shop_id is not None:
        query["shop_id"] = str(params.shop_id)
    if params.reason is not None:
        query["reason"] = params.reason.value
    if params.after is not None:
        at, last_id = str(params.after.rejected_at), str(params.after.id)
        query["$or"] = [
            {"rejected_at": {"$lt": at}},
            {"rejected_at": at, "_id": {"$lt": last_id}},
        ]
    return query


def next_rejection_cursor(docs: Sequence[Mapping[str, Any]], limit: int) -> str | None:
    """As `next_cursor`, for rejections (`docs` fetched with one look-ahead)."""
    if len(docs) <= limit:
        return None
    last = docs[limit - 1]
    return encode_rejection_cursor(
        RejectionCursor(rejected_at=str(last["rejected_at"]), id=str(last["_id"]))
    )
