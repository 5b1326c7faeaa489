"""The legacy search walks time, not offsets (issue 16).

Sorted by update time ascending, each page starts at the newest update time of the page before
(`update_time_from`), so a return updated while a sync pages (it leaves its place for the end
of the list) shifts nothing that is still to be read; paging by offset skipped one record for
each such update. Records of that boundary second already read are dropped (their identity is
the same). Only when a whole page shares one second does it step through that second by
offset, so a second holding more than a page never stalls it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ingestor.tiktok_mapping import record_update_time

log = logging.getLogger(__name__)

# One search call: the body -> (records, whether TikTok has more).
Fetch = Callable[[dict[str, Any]], Awaitable[tuple[list[Any], bool]]]


def _time_of(record: Any) -> int | None:
    return record_update_time(record) if isinstance(record, dict) else None


def _id_of(record: Any) -> str:
    return str(record.get("reverse_order_id")) if isinstance(record, dict) else repr(record)


async def walk_legacy(
    fetch: Fetch, since: int | None, until: int | None, filters: dict[str, Any], *, size: int,
    shop_id: str,
) -> AsyncIterator[list[Any]]:
    """The records of each page not read before in this walk, oldest update first."""
    time_from = since
    offset = 0
    boundary: set[str] = set()  # ids already read whose update time is `time_from`
    while True:
        body: dict[str, Any] = {**filters, "offset": offset, "size": size,
                                "sort_by": 1, "sort_type": 0}
        if time_from is not None:
            body["update_time_from"] = time_from
        if until is not None:
            body["update_time_to"] = until
        records, more = await fetch(body)
        yield [r for r in records if not (_id_of(r) in boundary and _time_of(r) == time_from)]
        if not more:
            return
        if not records:
            log.warning("tiktok legacy search says more but sent no records; stopping",
                        extra={"shop_id": shop_id, "offset": offset})
            return
        newest = max((t for t in map(_time_of, records) if t is not None), default=None)
        if newest is not None and (time_from is None or newest > time_from):
            time_from, offset = newest, 0
            boundary = set()
        else:  # the whole page is one second (or has no times): step through it
            offset += len(records)
        boundary |= {_id_of(r) for r in records if _time_of(r) == time_from}
