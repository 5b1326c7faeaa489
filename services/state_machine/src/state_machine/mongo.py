"""Generic MongoDB helpers of the state machine: chunked bulk writes sized for the server,
and bounded concurrent reads by key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import BulkWriteResult

Document = dict[str, Any]
_K = TypeVar("_K")
_V = TypeVar("_V")
DUPLICATE_KEY = 11000
READ_CONCURRENCY = 16

# FerretDB 1.24 (PostgreSQL backend) holds one connection of its pool for every update statement
# of a command until the command ends: update commands that together need more statements than
# the pool has connections deadlock it for good (its default pool of 50: one command of ~49).
# Bulk writes to it go in small chunks; real MongoDB takes large batches.
FERRETDB_WRITE_CHUNK = 10
MONGODB_WRITE_CHUNK = 1000
INSERT_CHUNK = 500  # inserts hold no connection per document: large commands are fine
# A batch's write commands are issued several at once. FerretDB runs a command's statements one
# after another, each a round trip to PostgreSQL, so commands side by side are what keeps both
# cores busy: `python -m bench.state_machine_throughput --events 60000 --returns 12000` gave
# 849 events/s with 3 commands of 20 at once, 1,187 with 6 of 10, 1,239 with 8 of 10, 1,259
# with 10 of 10 (and deadlocked FerretDB with 10 of 20 against a pool of 150). Eight update
# commands of 10 hold at most 80 of the connections devinfra gives FerretDB's pool
# (devinfra.postgres.FERRETDB_POOL_CONNECTIONS): room for two state machines and the others.
WRITE_CONCURRENCY = 8


async def write_chunk_size(db: AsyncDatabase[Document]) -> int:
    info = await db.command("buildInfo")
    return FERRETDB_WRITE_CHUNK if "ferretdbVersion" in info else MONGODB_WRITE_CHUNK


async def bulk_write_chunked(
    collection: AsyncCollection[Document], ops: list[Any], chunk: int, concurrency: int = 1
) -> BulkWriteResult:
    """`bulk_write(ops, ordered=False)` in commands of at most `chunk` operations, at most
    `concurrency` of them under way at once; the results are summed. A BulkWriteError of a
    chunk is raised after the other chunks ran.

    The operations are split evenly over a multiple of `concurrency` commands, so that every
    slot has about the same to do: 90 operations in commands of 10 at 8 at once would leave one
    slot a second command of 10 after the others are done (20 operations' time); as 15
    commands of 6, no slot has more than 12."""
    gate = asyncio.Semaphore(concurrency)
    rounds = max(1, -(-len(ops) // (chunk * concurrency)))
    size = max(1, -(-len(ops) // (rounds * concurrency)))

    async def one(part: list[Any]) -> tuple[int, int, int, list[dict[str, Any]]]:
        async with gate:
            try:
                result = await collection.bulk_write(part, ordered=False)
            except BulkWriteError as exc:
                details = exc.details
                return (details.get("nMatched", 0),
                        details.get("nInserted", 0) + details.get("nUpserted", 0),
                        details.get("nRemoved", 0), details.get("writeErrors", []))
            return (result.matched_count, result.inserted_count + result.upserted_count,
                    result.deleted_count, [])

    try:
        async with asyncio.TaskGroup() as group:  # any other failure cancels the rest
            tasks = [group.create_task(one(ops[start: start + size]))
                     for start in range(0, len(ops), size)]
    except BaseExceptionGroup as failed:  # the caller tells failures apart by their type
        raise failed.exceptions[0] from None
    results = [task.result() for task in tasks]
    matched, inserted, deleted = (sum(r[0] for r in results), sum(r[1] for r in results),
                                  sum(r[2] for r in results))
    errors = [error for r in results for error in r[3]]
    if errors:
        raise BulkWriteError({"writeErrors": errors, "nMatched": matched, "nInserted": inserted})
    return BulkWriteResult(
        {"nMatched": matched, "nInserted": inserted, "nUpserted": 0, "nModified": 0,
         "nRemoved": deleted, "upserted": []},
        acknowledged=True,
    )


async def insert_new(collection: AsyncCollection[Document], doc: Document) -> bool:
    """Insert a document that was read as absent; False when another writer inserted it
    first (the caller reads it again)."""
    try:
        await collection.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def update_guarded(collection: AsyncCollection[Document], guard: Document,
                         update: Document) -> bool:
    """Update the document matching `guard` (its `_id` and the value it was read with);
    False when another writer moved it on first (the caller reads it again)."""
    return (await collection.update_one(guard, update)).matched_count == 1


async def gather_bounded(
    items: Iterable[_K], fetch: Callable[[_K], Awaitable[_V]], limit: int = READ_CONCURRENCY
) -> dict[_K, _V]:
    """`fetch` each item, at most `limit` at a time; results by item. The first failure
    cancels the others and is raised as itself."""
    gate = asyncio.Semaphore(limit)

    async def one(item: _K) -> _V:
        async with gate:
            return await fetch(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {item: group.create_task(one(item)) for item in items}
    except BaseExceptionGroup as failed:  # the caller tells failures apart by their type
        raise failed.exceptions[0] from None
    return {item: task.result() for item, task in tasks.items()}
