"""MongoDB adapter of the known keys (`contracts.read_model.keys_collection`): per shop,
`KEY_SHARDS` documents, each a `KeySet` of the keys of the returns the read model has written
anything of (`_id` = "shop_id:shard", the shard a function of the key alone: `shard_of`).

A return the cache misses needs a read to learn what is stored of it, unless the set of its
shard says it is certainly not there: then it is new, and it costs no read (one read per
return of a fresh stream or a replay otherwise, a fifth of such a run's time).

That answer is safe because a key is in its set before anything of it is stored:
- a batch adds the keys it writes (`add`) before their history and documents (with the counts,
  see state_machine.repository), so a crash in between leaves a key with nothing stored, which
  costs a read and no more;
- each document has a `version`, and a write goes from the version the batch's reads saw: if
  another consumer added keys meanwhile (a rebalance; a key on another shard's partition), the
  write is refused and the batch is read and planned again, as for the counts;
- a set only grows, so a key once added is never reported absent again.

A consumer keeps what it wrote last of each document in a bounded cache, as for the counts:
the sets of its own partitions' shards, so the next batch asks no round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from pymongo.asynchronous.collection import AsyncCollection

from state_machine.keyset import KeySet, shard_of
from state_machine.mongo import gather_bounded, insert_new, update_guarded

Document = dict[str, Any]
Shard = tuple[str, int]  # (shop_id, shard)


@dataclass(frozen=True)
class Known:
    """A shard's key set and the version of its document (0: none stored yet)."""

    version: int
    keys: KeySet


def shard_key(shop_id: str, key: str) -> Shard:
    return shop_id, shard_of(key)


class KnownKeysStore:
    def __init__(self, collection: AsyncCollection[Document], cache_size: int) -> None:
        self.collection = collection
        self.cache: LRUCache[Shard, Known] = LRUCache(maxsize=max(cache_size, 1))
        self.seen: dict[Shard, Known] = {}  # what the last `unknown` answered from

    async def unknown(self, keys: Mapping[str, str]) -> set[str]:
        """Of `keys` (return key -> shop id), those certainly not in the read model. The next
        `add` goes on from the versions this answered from."""
        shards = {key: shard_key(shop, key) for key, shop in keys.items()}
        needed = set(shards.values())
        seen = {shard: self.cache[shard] for shard in needed if shard in self.cache}
        for shard, known in (await gather_bounded(needed - seen.keys(), self._read)).items():
            seen[shard] = self.cache[shard] = known
        self.seen = seen
        return {key for key, shard in shards.items() if key not in seen[shard].keys}

    async def _read(self, shard: Shard) -> Known:
        doc = await self.collection.find_one({"_id": _document_id(shard)})
        if doc is None:
            return Known(0, KeySet())
        return Known(int(doc["version"]), KeySet.from_document(doc["layers"]))

    def forget(self) -> None:
        self.cache.clear()
        self.seen = {}

    async def add(self, keys: Mapping[str, str]) -> bool:
        """Store `keys` (return key -> shop id) in their sets, each from the version the last
        `unknown` answered from (else the cached or stored one). False when any lost a race:
        the batch is read and planned again."""
        by_shard: dict[Shard, list[str]] = {}
        for key, shop in keys.items():
            by_shard.setdefault(shard_key(shop, key), []).append(key)
        saved = await gather_bounded(by_shard, lambda shard: self._add(shard, by_shard[shard]))
        if not all(saved.values()):
            self.forget()
            return False
        return True

    async def _add(self, shard: Shard, keys: Iterable[str]) -> bool:
        before = self.seen.get(shard) or self.cache.get(shard) or await self._read(shard)
        after = before.keys.with_keys(keys)
        if after is before.keys:
            return True
        known = Known(before.version + 1, after)
        layers = after.to_document()
        if before.version == 0:
            written = await insert_new(self.collection, {
                "_id": _document_id(shard), "shop_id": shard[0], "shard": shard[1],
                "version": known.version, "layers": layers})
        else:
            written = await update_guarded(
                self.collection, {"_id": _document_id(shard), "version": before.version},
                {"$set": {"version": known.version, "layers": layers}})
        if not written:
            return False
        self.cache[shard] = self.seen[shard] = known
        return True


def _document_id(shard: Shard) -> str:
    return f"{shard[0]}:{shard[1]}"
