"""Generic MongoDB helpers of the state machine: chunked bulk writes sized for the server,
and bounded concurrent reads by key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

Document = dict[str, Any]
_K = TypeVar("_K")
_V = TypeVar("_V")
DUPLICATE_KEY = 11000
READ_CONCURRENCY = 16

# FerretDB 1.24 (PostgreSQL backend) holds one connection of its pool of 50 for every update
# statement of a command until the command ends: an update command of more than ~49 statements
# on existing documents deadlocks it for good. Bulk writes to it go in chunks well below that
# (other clients share the pool); real MongoDB takes large batches.
FERRETDB_WRITE_CHUNK = 20
MONGODB_WRITE_CHUNK = 1000
INSERT_CHUNK = 500  # inserts hold no connection per document: large commands are fine


async def write_chunk_size(db: AsyncDatabase[Document]) -> int:
    info = await db.command("buildInfo")
    return FERRETDB_WRITE_CHUNK if "ferretdbVersion" in info else MONGODB_WRITE_CHUNK


async def bulk_write_chunked(
    collection: AsyncCollection[Document], ops: list[Any], chunk: int
) -> BulkWriteResult:
    """`bulk_write(ops, ordered=False)` in commands of at most `chunk` operations; the results
    are summed. A BulkWriteError of a chunk is raised after the remaining chunks ran."""
    matched = inserted = deleted = 0
    errors: list[dict[str, Any]] = []
    for start in range(0, len(ops), chunk):
        try:
            result = await collection.bulk_write(ops[start: start + chunk], ordered=False)
            matched += result.matched_count
            inserted += result.inserted_count + result.upserted_count
            deleted += result.deleted_count
        except BulkWriteError as exc:
            matched += exc.details.get("nMatched", 0)
            inserted += exc.details.get("nInserted", 0) + exc.details.get("nUpserted", 0)
            deleted += exc.details.get("nRemoved", 0)
            errors += exc.details.get("writeErrors", [])
    if errors:
        raise BulkWriteError({"writeErrors": errors, "nMatched": matched, "nInserted": inserted})
    return BulkWriteResult(
        {"nMatched": matched, "nInserted": inserted, "nUpserted": 0, "nModified": 0,
         "nRemoved": deleted, "upserted": []},
        acknowledged=True,
    )


async def gather_bounded(
    items: Iterable[_K], fetch: Callable[[_K], Awaitable[_V]], limit: int = READ_CONCURRENCY
) -> dict[_K, _V]:
    """`fetch` each item, at most `limit` at a time; results by item."""
    gate = asyncio.Semaphore(limit)

    async def one(item: _K) -> tuple[_K, _V]:
        async with gate:
            return item, await fetch(item)

    return dict(await asyncio.gather(*(one(item) for item in items)))
