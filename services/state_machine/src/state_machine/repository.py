"""MongoDB adapter of the state machine: load what a batch touches, store its plan.

Four collections per read model (see `contracts.read_model`): returns (one small document per
return, `_id` = "shop_id:return_id", guarded by `version`), their history (one document per
distinct event, `_id` = event id), status counts (per shop and partition, guarded by the
offset they hold: `state_machine.counts`) and known keys (per shop and key shard, guarded by
their version: `state_machine.known_keys`). A plan is written in that order: counts and known
keys, history, (its rejections are published), returns. Each write is idempotent or guarded,
so a crash between any two of them, or a redelivered batch, changes nothing twice (see
state_machine.batch).

Every read is by key (`_id`, or a return's history by `return_key`), issued concurrently:
O(log n) each on MongoDB and, with devinfra's expression indexes, on FerretDB too; never `$in`,
which FerretDB v1 answers by scanning the collection. A return the known keys show to be new
is not read at all.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from cachetools import LRUCache
from pymongo import AsyncMongoClient, DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.write_concern import WriteConcern

from contracts.messages import RejectedEvent
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    COUNTS_INDEXES,
    DEFAULT_RETURNS_COLLECTION,
    EVENTS_INDEXES,
    META_COLLECTION,
    READ_MODEL_SCHEMA_VERSION,
    REJECTIONS_COLLECTION,
    REJECTIONS_INDEXES,
    RETURNS_INDEXES,
    counts_collection,
    events_collection,
    keys_collection,
)
from runtime.indexes import ensure_indexes
from runtime.read_model import active_returns_collection
from state_machine import metrics
from state_machine.batch import (
    BatchPlan,
    Change,
    CountChange,
    Decoded,
    Loaded,
    Stored,
    StoredEvent,
    needs_history,
    touched_counts,
    touched_keys,
)
from state_machine.counts import CountsStore
from state_machine.documents import (
    event_document,
    return_document,
    stored_event,
    stored_return,
)
from state_machine.known_keys import KnownKeysStore
from state_machine.mongo import (
    DUPLICATE_KEY,
    FERRETDB_WRITE_CHUNK,
    INSERT_CHUNK,
    WRITE_CONCURRENCY,
    bulk_write_chunked,
    gather_bounded,
    write_chunk_size,
)
from state_machine.settings import DEFAULT_CACHE_RETURNS

Document = dict[str, Any]
Announce = Callable[[list[RejectedEvent]], Awaitable[None]]


class ReadModelOutdated(RuntimeError):
    """The stored read model has another layout than this code writes: rebuild it (replay)."""


async def check_schema(db: AsyncDatabase[Document]) -> None:
    """Refuse a stored read model of another layout, once, at start; name a fresh one."""
    meta = await db[META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
    if meta is None:
        if await db[DEFAULT_RETURNS_COLLECTION].find_one({}, {"_id": 1}) is not None:
            version = 1  # written before the layout had a version
        else:
            try:
                await db[META_COLLECTION].update_one(
                    {"_id": ACTIVE_READ_MODEL_ID},
                    {"$setOnInsert": {"collection": DEFAULT_RETURNS_COLLECTION,
                                      "schema_version": READ_MODEL_SCHEMA_VERSION}},
                    upsert=True,
                )
            except DuplicateKeyError:  # another state machine named it at the same moment
                return await check_schema(db)
            return
    else:
        version = int(meta.get("schema_version", 1))
    if version != READ_MODEL_SCHEMA_VERSION:
        raise ReadModelOutdated(
            f"the stored read model has schema version {version} and this state machine "
            f"writes version {READ_MODEL_SCHEMA_VERSION}: rebuild it with `make replay`"
        )


class ActiveReadModel:
    """The repository of the read model currently named active in `meta`, or of a fixed
    returns collection (a replay's). Indexes are created once per read model."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, fixed: str,
                 cache_size: int):
        self.client, self.database, self.fixed = client, database, fixed
        self.cache_size = cache_size
        self.db = client.get_database(database)
        self._repositories: dict[str, ReadModelRepository] = {}

    async def __call__(self) -> ReadModelRepository:
        name = self.fixed or await active_returns_collection(self.db)
        if name not in self._repositories:
            chunk = await write_chunk_size(self.db)
            repository = ReadModelRepository(self.client, self.database, name, chunk,
                                             self.cache_size)
            await repository.ensure_indexes()
            self._repositories[name] = repository
        return self._repositories[name]


class MissMix:
    """Of the returns the cache missed lately, the share that turned out to be stored (a
    moving average over batches), which tells `ReadModelRepository` what to read first for a
    miss. Mostly new returns (a fresh stream, a warm cache): the history first, which finds
    nothing, one read. Stored returns (after a restart, or more returns moving than the cache
    holds): the document first, one read instead of two, and no history read back. Measured
    on FerretDB at 20,000 returns, 16 reads under way, decoded as here (`python -m
    bench.miss_reads`): a history of 5 events 1.3 ms, a return 0.6 ms, a read that finds
    nothing 0.34-0.39 ms; the document first costs less once about a quarter of the misses are
    stored returns."""

    RETURN_FIRST_FROM = 0.25
    WEIGHT = 0.2  # of the latest batch

    def __init__(self) -> None:
        # Unknown at start: the document first, as after a restart, but one batch of new
        # returns (a fresh stream, a replay) is enough to turn it.
        self.share = 0.3

    def return_first(self) -> bool:
        return self.share >= self.RETURN_FIRST_FROM

    def observe(self, stored: int, missed: int) -> None:
        if missed:
            self.share += self.WEIGHT * (stored / missed - self.share)


class ReadModelRepository:
    """Keeps what it wrote last in bounded caches: a consumer owns its partitions, so the next
    batch for a return usually finds it there instead of reading it back. A stale entry
    (another consumer wrote meanwhile, during a rebalance) is harmless: its version or offset
    no longer matches, the write is refused, the entries are dropped and read again."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, collection: str,
                 write_chunk: int = FERRETDB_WRITE_CHUNK,
                 cache_size: int = DEFAULT_CACHE_RETURNS) -> None:
        self.write_chunk = write_chunk
        self.cache: LRUCache[str, Stored] = LRUCache(maxsize=max(cache_size, 1))
        self.misses = MissMix()
        durable = WriteConcern(w="majority", j=True)
        db = client.get_database(database, write_concern=durable)
        self.returns = db.get_collection(collection)
        self.events = db.get_collection(events_collection(collection))
        self.counts = CountsStore(db.get_collection(counts_collection(collection)),
                                  cache_size // 10)
        self.known = KnownKeysStore(db.get_collection(keys_collection(collection)),
                                    cache_size // 4)  # a shop's sets: KEY_SHARDS entries
        self.rejections = db.get_collection(REJECTIONS_COLLECTION)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.returns, RETURNS_INDEXES)
        await ensure_indexes(self.events, EVENTS_INDEXES)
        await ensure_indexes(self.counts.collection, COUNTS_INDEXES)
        await ensure_indexes(self.rejections, REJECTIONS_INDEXES)

    # ------------------------------------------------------------------------------ reads

    async def load(self, decoded: Decoded) -> Loaded:
        """What is stored of everything the batch touches (see `batch.plan`)."""
        loaded = Loaded()
        keys = touched_keys(decoded)
        loaded.returns = {k: self.cache[k] for k in keys if k in self.cache}
        metrics.CACHE.labels("hit").inc(len(loaded.returns))
        metrics.CACHE.labels("miss").inc(len(keys) - len(loaded.returns))
        loaded.counted, (new, fetched) = await asyncio.gather(
            self.counts.offsets(touched_counts(decoded)),
            self._load_missed({k: shop for k, shop in keys.items() if k not in self.cache}))
        metrics.KNOWN_NEW.inc(len(new))
        loaded.histories |= {key: [] for key in new}  # nothing stored: nothing to read
        for key, (stored, history) in fetched.items():
            if history is not None:
                loaded.histories[key] = history
            if stored is not None:
                loaded.returns[key] = self.cache[key] = stored
        self.misses.observe(stored=sum(s is not None for s, _ in fetched.values()),
                            missed=len(fetched))
        wanted = needs_history(decoded, loaded.returns, loaded.counted) - loaded.histories.keys()
        loaded.histories |= await gather_bounded(wanted, self._load_history)
        return loaded

    async def _load_missed(self, missed: dict[str, str]) -> tuple[
            set[str], dict[str, tuple[Stored | None, list[StoredEvent] | None]]]:
        """Of the returns the cache missed (key -> shop), those certainly new (no read), and
        what is stored of the others."""
        new = await self.known.unknown(missed)
        return new, await gather_bounded([k for k in missed if k not in new],
                                         self._load_uncached)

    async def _load_uncached(self, key: str) -> tuple[Stored | None, list[StoredEvent] | None]:
        """A return not in the cache, and its history when that came first (see `MissMix`).
        Its history first: a return without one (a new return) has no document either, as
        history is written first; so a new return costs one read. Its document first: a
        stored return costs one read, its history only if `needs_history` asks for it; a
        return without a document may still have a history (every event of it rejected)."""
        if self.misses.return_first():
            stored = await self._load_return(key)
            return stored, (await self._load_history(key) if stored is None else None)
        history = await self._load_history(key)
        return (await self._load_return(key) if history else None), history

    async def _load_return(self, key: str) -> Stored | None:
        doc = await self.returns.find_one({"_id": key})
        return None if doc is None else stored_return(doc)

    async def _load_history(self, key: str) -> list[StoredEvent]:
        return [stored_event(doc) async for doc in self.events.find({"return_key": key})]

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.cache.pop(key, None)
        self.counts.forget()
        self.known.forget()

    # ----------------------------------------------------------------------------- writes

    async def save(self, plan: BatchPlan, announce: Announce) -> bool:
        """Store the plan: counts and known keys, history, then `announce` its rejections,
        then the returns.
        False when a write lost a race with another consumer (the batch must be loaded and
        planned again); what was written is kept, and the next plan accounts for it."""
        batch_id = uuid.uuid4().hex
        new_events = [InsertOne(event_document(r)) for c in plan.changes for r in c.events
                      if r.event.event_id in c.new_events]
        changed_events = [ReplaceOne({"_id": r.event.event_id}, event_document(r))
                          for c in plan.changes for r in c.events
                          if r.event.event_id not in c.new_events]
        returns = [op for c in plan.changes if (op := self._return_op(c, batch_id))]
        try:
            # Before anything of them is stored: a key not in its set is taken for new.
            if not all(await asyncio.gather(
                    self.known.add({c.key: c.shop_id for c in plan.changes}),
                    self._save_counts(plan.counts))):
                return False
            if not await self._save_events(new_events, changed_events):
                return False
            await announce(plan.rejections)
            lost = await self._save_returns(returns, plan.changes, batch_id)
        except BaseException:
            self.forget(c.key for c in plan.changes)  # some may be written: read them back
            raise
        for change in plan.changes:
            if change.key in lost or change.state is None:
                self.cache.pop(change.key, None)
            else:
                self.cache[change.key] = Stored(change.state, change.partition, change.offset,
                                                (change.expected_version or 0) + 1,
                                                change.last_key)
        if lost:
            self.forget(lost)
        return not lost

    @staticmethod
    def _return_op(change: Change, batch_id: str) -> Any:
        guard = {"_id": change.key, "version": change.expected_version}
        if change.state is None:
            return DeleteOne(guard) if change.expected_version is not None else None
        doc = return_document(change, batch_id)
        return InsertOne(doc) if change.expected_version is None else ReplaceOne(guard, doc)

    async def _save_counts(self, counts: list[CountChange]) -> bool:
        return await self.counts.save(counts)

    async def _save_events(self, inserts: list[Any], replaces: list[Any]) -> bool:
        """New history documents are inserted (in large commands, a few at once: FerretDB
        inserts each command's in one statement), changed ones replaced. False when another
        consumer inserted one of them first (a rebalance): the batch is planned again from
        what is stored."""
        try:
            if inserts:
                await bulk_write_chunked(self.events, inserts, INSERT_CHUNK, WRITE_CONCURRENCY)
            if replaces:
                await bulk_write_chunked(self.events, replaces, self.write_chunk,
                                         WRITE_CONCURRENCY)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
            self.counts.forget()
            return False
        return True

    async def _save_returns(self, ops: list[Any], changes: list[Change],
                            batch_id: str) -> set[str]:
        """The keys whose write lost a race (their stored version moved on)."""
        if not ops:
            return set()
        inserts = [op for op in ops if isinstance(op, InsertOne)]
        others = [op for op in ops if not isinstance(op, InsertOne)]
        parts = [(part, chunk) for part, chunk in ((inserts, INSERT_CHUNK),
                                                   (others, self.write_chunk)) if part]
        try:  # different returns: the inserts and the other writes go side by side
            results = await gather_bounded(range(len(parts)), lambda i: bulk_write_chunked(
                self.returns, *parts[i], WRITE_CONCURRENCY))
            done = sum(r.matched_count + r.inserted_count + r.deleted_count
                       for r in results.values())
            if done == len(ops):
                return set()
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
        written = [c.key for c in changes if c.state is not None]
        ours = await gather_bounded(written, lambda key: self.returns.find_one(
            {"_id": key, "written_by": batch_id}, {"_id": 1}))
        deleted = {c.key for c in changes if c.state is None and c.expected_version is not None}
        present = await gather_bounded(deleted, lambda key: self.returns.find_one(
            {"_id": key}, {"_id": 1}))
        return ({k for k, doc in ours.items() if doc is None}
                | {k for k, doc in present.items() if doc is not None})

    async def record_rejections(self, rejections: list[RejectedEvent]) -> None:
        """Keep rejections where the API can list them; the same rejection twice is one, and
        a withdrawal (or a rejection given again) updates only its `withdrawn` flag. A
        withdrawal of a rejection never recorded (announced again after a crash) is a no-op."""
        if not rejections:
            return
        await bulk_write_chunked(
            self.rejections,
            [
                UpdateOne({"_id": r.rejection_id}, {"$set": {"withdrawn": True}})
                if r.withdrawn else  # of a rejection recorded before; never a new one
                UpdateOne(
                    {"_id": r.rejection_id},
                    {"$setOnInsert": r.model_dump(mode="json", exclude={"withdrawn"})
                     | {"_id": r.rejection_id},
                     "$set": {"withdrawn": False}},
                    upsert=True,
                )
                for r in rejections
            ],
            self.write_chunk,
        )
