"""MongoDB adapter of the state machine: load the returns a batch touches, store them in bulk.

One document per return, `_id` = "shop_id:return_id". Writes are single-document and guarded by
`version` (optimistic concurrency), so two consumers that briefly own the same partition during
a rebalance can never overwrite each other: the loser reloads and finds its events applied.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from cachetools import LRUCache
from pymongo import AsyncMongoClient, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult
from pymongo.write_concern import WriteConcern

from contracts.indexes import ensure_indexes
from contracts.messages import RejectedEvent
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    DEFAULT_RETURNS_COLLECTION,
    META_COLLECTION,
    REJECTIONS_COLLECTION,
    REJECTIONS_INDEXES,
    RETURNS_INDEXES,
    ReturnState,
)
from state_machine.batch import Change, Stored

Document = dict[str, Any]
DUPLICATE_KEY = 11000

# FerretDB 1.24 (PostgreSQL backend) holds one connection of its pool of 50 for every update
# statement of a command until the command ends: an update command of more than ~49 statements
# on existing documents deadlocks it for good. Bulk writes to it go in chunks well below that
# (other clients share the pool); real MongoDB takes large batches.
FERRETDB_WRITE_CHUNK = 20
MONGODB_WRITE_CHUNK = 1000


async def write_chunk_size(db: AsyncDatabase[Document]) -> int:
    info = await db.command("buildInfo")
    return FERRETDB_WRITE_CHUNK if "ferretdbVersion" in info else MONGODB_WRITE_CHUNK


async def bulk_write_chunked(
    collection: AsyncCollection[Document], ops: list[Any], chunk: int
) -> BulkWriteResult:
    """`bulk_write(ops, ordered=False)` in commands of at most `chunk` operations; the results
    are summed. A BulkWriteError of a chunk is raised after the remaining chunks ran."""
    matched = inserted = 0
    errors: list[dict[str, Any]] = []
    for start in range(0, len(ops), chunk):
        try:
            result = await collection.bulk_write(ops[start: start + chunk], ordered=False)
            matched += result.matched_count
            inserted += result.inserted_count
        except BulkWriteError as exc:
            matched += exc.details.get("nMatched", 0)
            inserted += exc.details.get("nInserted", 0)
            errors += exc.details.get("writeErrors", [])
    if errors:
        raise BulkWriteError({"writeErrors": errors, "nMatched": matched, "nInserted": inserted})
    return BulkWriteResult(
        {"nMatched": matched, "nInserted": inserted, "nUpserted": 0, "nModified": 0,
         "nRemoved": 0, "upserted": []},
        acknowledged=True,
    )


async def active_returns_collection(db: AsyncDatabase[Document]) -> str:
    meta = await db[META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
    return str(meta["collection"]) if meta else DEFAULT_RETURNS_COLLECTION


class ActiveReturns:
    """The repository of the returns collection currently named active in `meta`, or of a
    fixed collection. Indexes are created once per collection."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, fixed: str = ""):
        self.client, self.database, self.fixed = client, database, fixed
        self.db = client.get_database(database)
        self._repositories: dict[str, ReturnsRepository] = {}

    async def __call__(self) -> ReturnsRepository:
        name = self.fixed or await active_returns_collection(self.db)
        if name not in self._repositories:
            chunk = await write_chunk_size(self.db)
            repository = ReturnsRepository(self.client, self.database, name, chunk)
            await repository.ensure_indexes()
            self._repositories[name] = repository
        return self._repositories[name]


class ReturnsRepository:
    """Keeps what it wrote last in a bounded cache: a consumer owns its partitions, so the next
    batch for a return usually finds it there instead of reading it back (on FerretDB an `$in`
    read scans the whole collection). A stale entry (another consumer wrote the return during a
    rebalance) is harmless: its version no longer matches, the write is refused, the entry is
    dropped and the return is read from the database and planned again."""

    def __init__(self, client: AsyncMongoClient[Document], database: str, collection: str,
                 write_chunk: int = FERRETDB_WRITE_CHUNK, cache_size: int = 50_000) -> None:
        self.write_chunk = write_chunk
        self.cache: LRUCache[str, Stored] = LRUCache(maxsize=max(cache_size, 1))
        durable = WriteConcern(w="majority", j=True)
        db = client.get_database(database, write_concern=durable)
        self.returns = db.get_collection(collection)
        self.rejections = db.get_collection(REJECTIONS_COLLECTION)

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self.returns, RETURNS_INDEXES)
        await ensure_indexes(self.rejections, REJECTIONS_INDEXES)

    async def load(self, keys: Iterable[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        wanted = []
        for key in set(keys):
            if key in self.cache:
                found[key] = self.cache[key]
            else:
                wanted.append(key)
        if not wanted:
            return found
        async for doc in self.returns.find({"_id": {"$in": wanted}}):
            position = doc.get("applied", {})
            found[doc["_id"]] = self.cache[doc["_id"]] = Stored(
                state=ReturnState.model_validate(doc),
                partition=int(position.get("partition", -1)),
                offset=int(position.get("offset", -1)),
                version=int(doc.get("version", 0)),
            )
        return found

    async def save(self, changes: list[Change]) -> set[str]:
        """Store the changes in one bulk write; the keys whose write lost a race come back
        (their stored version moved on), to be reloaded and planned again."""
        if not changes:
            return set()
        batch_id = uuid.uuid4().hex
        ops: list[InsertOne[Document] | ReplaceOne[Document]] = []
        for change in changes:
            doc = change.state.model_dump(mode="json") | {
                "_id": change.key,
                "applied": {"partition": change.partition, "offset": change.offset},
                "version": (change.expected_version or 0) + 1,
                "written_by": batch_id,
            }
            if change.expected_version is None:
                ops.append(InsertOne(doc))
            else:
                ops.append(ReplaceOne({"_id": change.key, "version": change.expected_version}, doc))
        try:
            lost = await self._write(ops, [c.key for c in changes], batch_id)
        except BaseException:
            for change in changes:  # some may be written, some not: read them back next time
                self.cache.pop(change.key, None)
            raise
        for change in changes:
            if change.key in lost:
                self.cache.pop(change.key, None)
            else:
                self.cache[change.key] = Stored(change.state, change.partition, change.offset,
                                                (change.expected_version or 0) + 1)
        return lost

    async def _write(self, ops: list[Any], keys: list[str], batch_id: str) -> set[str]:
        try:
            result = await bulk_write_chunked(self.returns, ops, self.write_chunk)
            if result.matched_count + result.inserted_count == len(ops):
                return set()
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
        ours = self.returns.find({"_id": {"$in": keys}, "written_by": batch_id}, {"_id": 1})
        return set(keys) - {doc["_id"] async for doc in ours}

    async def record_rejections(self, rejections: list[RejectedEvent]) -> None:
        """Keep rejections where the API can list them; the same rejection twice is one."""
        if not rejections:
            return
        await bulk_write_chunked(
            self.rejections,
            [
                UpdateOne(
                    {"_id": r.rejection_id},
                    {"$setOnInsert": r.model_dump(mode="json") | {"_id": r.rejection_id}},
                    upsert=True,
                )
                for r in rejections
            ],
            self.write_chunk,
        )
