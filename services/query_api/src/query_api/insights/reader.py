"""The MongoDB reads behind the insights: three queries, each led by the shop's equality (the
one filter FerretDB pushes down to PostgreSQL), each handing over only the fields needed.

1. the shop's returns requested in the window, or with no request time known (their request
   time comes from their history): `ReturnRow`s;
2. the distinct returns with a rejected event (`$match` + `$group`, which FerretDB supports);
3. the applied events of the shop after AFTERSALE_APPLYING since the window began (every
   applied event, when some return has no request time): `HistoryRow`s.

On MongoDB, `RETURNS_INDEXES["shop_requested"]` serves 1 and
`EVENTS_INDEXES["shop_outcome_updated"]` serves 2 and 3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from contracts.read_model import Outcome, events_collection
from contracts.statuses import ReturnStatus
from contracts.transitions import LIFECYCLE_RANK
from query_api.insights.aggregate import HistoryRow, Refund, ReturnRow, Sku, Window

Document = dict[str, Any]
R = TypeVar("R")
log = structlog.get_logger("query_api.insights")

BATCH_SIZE = 5000
RETURN_FIELDS: dict[str, int] = {
    "status": 1,
    "anomaly": 1,
    "details.request_time": 1,
    "details.refund": 1,
    "details.reason": 1,
    "details.reason_text": 1,
    "details.items.sku_id": 1,
    "details.items.seller_sku": 1,
    "details.items.product_name": 1,
    "details.items.sku_name": 1,
}
HISTORY_FIELDS: dict[str, int] = {
    "_id": 0, "return_key": 1, "update_time": 1, "rank": 1, "event.status": 1, "inferred": 1,
}


def returns_filter(shop_id: str, window: Window) -> Document:
    """Returns requested in the window, and those whose request time is not known."""
    return {"shop_id": shop_id, "$or": [
        {"details.request_time": {"$gte": window.start, "$lt": window.end}},
        {"details.request_time": None},
    ]}


def history_filter(shop_id: str, since: int | None) -> Document:
    """The shop's applied events. With `since`: only those from then on, and none of
    AFTERSALE_APPLYING (the decision and the refund are statuses after it), excluded by `rank`,
    a top-level field FerretDB filters in PostgreSQL with the shop and the outcome. Without:
    every applied event, to place the returns without a request time by their first one."""
    query: Document = {"shop_id": shop_id, "outcome": Outcome.APPLIED.value}
    if since is not None:
        query["rank"] = {"$ne": LIFECYCLE_RANK[ReturnStatus.AFTERSALE_APPLYING]}
        query["update_time"] = {"$gte": since}
    return query


def rejected_pipeline(shop_id: str) -> list[Document]:
    return [
        {"$match": {"shop_id": shop_id, "outcome": Outcome.REJECTED.value}},
        {"$group": {"_id": "$return_key"}},
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _refund(value: Any) -> Refund | None:
    if not isinstance(value, Mapping):
        return None
    currency, amount = _text(value.get("currency")), value.get("amount")
    if currency is None or not isinstance(amount, str | int):
        return None
    try:
        parsed = Decimal(amount)
    except InvalidOperation:
        return None
    return Refund(parsed, currency) if parsed.is_finite() else None


def _skus(items: Any) -> tuple[Sku, ...]:
    found: dict[str, Sku] = {}
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        sku_id, seller_sku = _text(item.get("sku_id")), _text(item.get("seller_sku"))
        key = sku_id or seller_sku
        if key is not None and key not in found:
            names = (seller_sku or sku_id, _text(item.get("product_name")),
                     _text(item.get("sku_name")))
            found[key] = Sku(key, " · ".join(n for n in names if n))
    return tuple(found.values())


def return_row(doc: Document) -> ReturnRow:
    """The row of a returns document (projected with RETURN_FIELDS); ValueError if unreadable."""
    details = doc.get("details")
    details = details if isinstance(details, Mapping) else {}
    request_time = details.get("request_time")
    if request_time is not None and not isinstance(request_time, int):
        raise ValueError(f"request_time {request_time!r} is not unix seconds")
    return ReturnRow(
        key=str(doc["_id"]),
        status=ReturnStatus(doc["status"]),
        request_time=request_time,
        refund=_refund(details.get("refund")),
        reason=_text(details.get("reason")),
        reason_text=_text(details.get("reason_text")),
        skus=_skus(details.get("items")),
        anomaly=doc.get("anomaly") is True,
    )


def history_row(doc: Document) -> HistoryRow:
    """The row of a history document (projected with HISTORY_FIELDS); ValueError if unreadable."""
    event = doc.get("event")
    if not isinstance(event, Mapping) or not isinstance(doc.get("update_time"), int):
        raise ValueError("not a history document")
    return HistoryRow(
        return_key=str(doc["return_key"]),
        update_time=int(doc["update_time"]),
        rank=int(doc.get("rank") or 0),
        status=ReturnStatus(event["status"]),
        inferred=tuple(ReturnStatus(s) for s in doc.get("inferred") or ()),
    )


def _readable(docs: list[Document], parse: Callable[[Document], R], what: str) -> list[R]:
    rows: list[R] = []
    skipped = 0
    for doc in docs:
        try:
            rows.append(parse(doc))
        except (KeyError, TypeError, ValueError):
            skipped += 1
    if skipped:
        log.warning("insights_rows_unreadable", what=what, skipped=skipped)
    return rows


class InsightsReader:
    """Reads the rows of one shop from the active read model's collections."""

    def __init__(self, db: AsyncDatabase[Document], returns_collection: str) -> None:
        self._returns = db[returns_collection]
        self._events = db[events_collection(returns_collection)]

    async def read(
        self, shop_id: str, window: Window
    ) -> tuple[list[ReturnRow], list[HistoryRow], set[str]]:
        """The shop's returns that may fall in the window, their applied events, and the keys
        of the shop's returns with a rejected event."""
        # The three reads at once; the history's is a guess that every return has a request
        # time, so that only events from the window's start on matter (nothing happens to a
        # return before its request).
        docs, rejected, events = await asyncio.gather(
            self._returns.find(returns_filter(shop_id, window), RETURN_FIELDS)
            .batch_size(BATCH_SIZE).to_list(),
            self._rejected(shop_id),
            self._history(shop_id, window.start),
        )
        rows = _readable(docs, return_row, "returns")
        if any(r.request_time is None for r in rows):  # placed by their first event, if ever
            events = await self._history(shop_id, None)
        wanted = {row.key for row in rows}
        history = [
            h for h in _readable(events, history_row, "history") if h.return_key in wanted
        ]
        return rows, history, rejected

    async def _history(self, shop_id: str, since: int | None) -> list[Document]:
        query = self._events.find(history_filter(shop_id, since), HISTORY_FIELDS)
        return await query.batch_size(BATCH_SIZE).to_list()

    async def _rejected(self, shop_id: str) -> set[str]:
        cursor = await self._events.aggregate(rejected_pipeline(shop_id))
        return {str(doc["_id"]) async for doc in cursor}
