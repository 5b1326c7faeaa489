"""MongoDB adapter of the status counts (`contracts.read_model.CountsDocument`): one document
per shop and events-topic partition, moved on only from the offset it was read at, so a crash
between two writes, or a redelivered batch of another size, never counts a record twice.

A consumer owns its partitions, so it keeps what it wrote last of each document in a bounded
cache: its offset, which the next plan needs (`batch.plan`), and its per-day histogram, which
the next write adds the batch's change to. The histogram is stored as one text
(`days_text`), set whole by the write that moves the offset on: MongoDB's `$inc` would need it
as nested fields, which FerretDB rewrites at a cost that grows with the shop's days. A stale
entry (another consumer wrote meanwhile, during a rebalance) is harmless: its offset no
longer matches, the write is refused, and the entries are read again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from pymongo.asynchronous.collection import AsyncCollection

from contracts.read_model import CountsDocument, DayHistogram, days_text
from state_machine.batch import CountChange, CountsKey
from state_machine.documents import counts_id
from state_machine.mongo import gather_bounded, insert_new, update_guarded

Document = dict[str, Any]


@dataclass(frozen=True)
class Counted:
    """What a counts document holds: the offset it counts up to, and its days."""

    offset: int
    days: DayHistogram


def days_after(days: Mapping[str, Mapping[str, int]],
               delta: Mapping[tuple[int, str], int]) -> DayHistogram:
    """The histogram once a batch's change is added (days and statuses that reach 0 go)."""
    after = {day: dict(by_status) for day, by_status in days.items()}
    for (start, status), n in delta.items():
        by_status = after.setdefault(str(start), {})
        by_status[status] = by_status.get(status, 0) + n
        if not by_status[status]:
            del by_status[status]
        if not by_status:
            del after[str(start)]
    return after


class CountsStore:
    """The counts documents of one read model, and the cache of what this consumer wrote."""

    def __init__(self, collection: AsyncCollection[Document], cache_size: int) -> None:
        self.collection = collection
        self.cache: LRUCache[CountsKey, Counted] = LRUCache(maxsize=max(cache_size, 1))

    async def offsets(self, pairs: Iterable[CountsKey]) -> dict[CountsKey, int]:
        """The offset each (shop, partition) is counted up to; absent: no document yet."""
        wanted = set(pairs)
        known = {pair: self.cache[pair] for pair in wanted if pair in self.cache}
        read = await gather_bounded(wanted - known.keys(), self._read)
        for pair, counted in read.items():
            if counted is not None:
                known[pair] = self.cache[pair] = counted
        return {pair: counted.offset for pair, counted in known.items()}

    async def _read(self, pair: CountsKey) -> Counted | None:
        doc = await self.collection.find_one({"_id": counts_id(pair)})
        if doc is None:
            return None
        stored = CountsDocument.model_validate(doc)
        return Counted(stored.offset, stored.days)

    def forget(self) -> None:
        self.cache.clear()

    async def save(self, changes: list[CountChange]) -> bool:
        """Each (shop, partition) is its own document, guarded on its own: they are written
        concurrently (a batch on 12 partitions waited on 12 round trips one after another).
        False when any lost a race; those that won are kept, and the next plan reads them."""
        by_pair = {(c.shop_id, c.partition): c for c in changes}
        saved = await gather_bounded(by_pair, lambda pair: self._save(by_pair[pair]))
        if not all(saved.values()):
            self.forget()
            return False
        return True

    async def _save(self, change: CountChange) -> bool:
        pair = (change.shop_id, change.partition)
        if change.expected_offset is None:
            after = Counted(change.offset, days_after({}, change.day_delta))
            written = await insert_new(self.collection, {
                "_id": counts_id(pair), "shop_id": change.shop_id,
                "partition": change.partition, "offset": after.offset,
                "counts": change.delta, "days": days_text(after.days)})
        else:
            before = self.cache.get(pair)
            if before is None or before.offset != change.expected_offset:
                before = await self._read(pair)  # left the cache since the batch was planned
                if before is None or before.offset != change.expected_offset:
                    return False
            after = Counted(change.offset, days_after(before.days, change.day_delta))
            update: Document = {"$set": {"offset": after.offset}}
            if change.day_delta:
                update["$set"]["days"] = days_text(after.days)
            if change.delta:
                update["$inc"] = {f"counts.{status}": n for status, n in change.delta.items()}
            written = await update_guarded(
                self.collection, {"_id": counts_id(pair), "offset": change.expected_offset},
                update)
        if not written:
            return False
        self.cache[pair] = after
        return True
