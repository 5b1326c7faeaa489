"""Pure planning of a status tab's page read bucket by bucket (no I/O).

FerretDB v1 serves only top-level equality from an index, and sorts and limits in memory: a
plain `find({shop_id, status}).sort(update_time).limit(51)` reads every return of the tab. So a
shop's tab is read one time bucket at a time, newest first, by equality on the bucket key each
stored return carries (`contracts.read_model.page_fields`), until the page is full:

- which days hold returns of the tab, and how many, comes from the status counts the state
  machine keeps per day (`CountsDocument.days`), so empty days cost nothing;
- a day with few returns is read whole, several such days at once; a busy day hour by hour,
  newest first, stopping as soon as the page is full.

A page then costs about its own size plus one bucket, at any size of the shop. On MongoDB the
same reads are served by the bucket indexes of `contracts.read_model.RETURNS_INDEXES`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.read_model import (
    DAY_S,
    HOUR_S,
    CountsDocument,
    bucket_start,
    page_bucket,
    page_field,
)
from query_api.queries import Cursor, ListParams

# A day with at most this many returns of the tab is read whole; a busier one hour by hour.
DAY_READ_MAX = 100


def walks_buckets(params: ListParams) -> bool:
    """Whether the list is one shop's tab (any statuses) with no other filter."""
    return params.shop_id is not None and (
        params.reverse_type, params.order_id, params.return_id, params.search, params.anomaly,
        params.updated_from, params.updated_to,
    ) == (None,) * 7


def day_histogram(counts: Iterable[CountsDocument], statuses: Sequence[str]) -> dict[int, int]:
    """Returns of the tab (these statuses, or all) per day, from a shop's counts documents."""
    per_day: Counter[int] = Counter()
    for doc in counts:
        for day, by_status in doc.days.items():
            per_day[int(day)] += sum(n for status, n in by_status.items()
                                     if not statuses or status in statuses)
    return {day: n for day, n in per_day.items() if n > 0}


@dataclass(frozen=True)
class Read:
    """The buckets to read next: several quiet days at once, or one hour of a busy day."""

    seconds: int  # DAY_S or HOUR_S
    starts: tuple[int, ...]


def reads(histogram: Mapping[int, int], after: Cursor | None, limit: int) -> list[list[Read]]:
    """The reads of a page, newest first, in groups: the caller reads a group, and stops when
    it holds `limit + 1` returns after the cursor (the look-ahead of `next_cursor`). A group is
    either a run of quiet days that holds enough for the page, or the hours of one busy day,
    one hour a group."""
    last_day = None if after is None else bucket_start(after.update_time, DAY_S)
    days = sorted((d for d in histogram if last_day is None or d <= last_day), reverse=True)
    groups: list[list[Read]] = []
    quiet: list[int] = []
    held = 0
    for day in days:
        if histogram[day] > DAY_READ_MAX:
            if quiet:
                groups.append([Read(DAY_S, tuple(quiet))])
                quiet, held = [], 0
            last_hour = (bucket_start(after.update_time, HOUR_S)
                         if after is not None and day == last_day else day + DAY_S - HOUR_S)
            groups += [[Read(HOUR_S, (hour,))]
                       for hour in range(last_hour, day - HOUR_S, -HOUR_S)]
            continue
        quiet.append(day)
        held += histogram[day]
        if held > limit:
            groups.append([Read(DAY_S, tuple(quiet))])
            quiet, held = [], 0
    if quiet:
        groups.append([Read(DAY_S, tuple(quiet))])
    return groups


def bucket_filters(shop_id: str, statuses: Sequence[str | None], read: Read
                   ) -> list[dict[str, Any]]:
    """The equality filters of one read: one per bucket and status (or per bucket for all)."""
    return [
        {page_field(status, read.seconds): page_bucket(shop_id, status, read.seconds, start)}
        for start in read.starts
        for status in (list(statuses) or [None])
    ]


def after_cursor(doc: Mapping[str, Any], after: Cursor | None) -> bool:
    """Whether a return comes after the cursor in the list's order (newest update first)."""
    if after is None:
        return True
    t = int(doc["update_time"])
    return t < after.update_time or (t == after.update_time and str(doc["_id"]) < after.id)


def newest_first(docs: Iterable[Mapping[str, Any]]) -> list[Any]:
    return sorted(docs, key=lambda d: (int(d["update_time"]), str(d["_id"])), reverse=True)
