"""`gather_bounded`, which the state machine's reads and its counts writes go through: its
bound, and a failure that stops the rest instead of leaving writes running behind the retry;
and `bulk_write_chunked`'s bound, which keeps FerretDB's pool from deadlocking."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import UpdateOne
from pymongo.errors import AutoReconnect
from pymongo.results import BulkWriteResult

from devinfra.postgres import FERRETDB_POOL_CONNECTIONS
from state_machine.mongo import (
    FERRETDB_WRITE_CHUNK,
    READ_CONCURRENCY,
    WRITE_CONCURRENCY,
    bulk_write_chunked,
    gather_bounded,
)


async def test_results_come_by_item_with_no_more_than_the_limit_under_way() -> None:
    running, most = 0, 0

    async def fetch(item: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001)
        running -= 1
        return item * 10

    assert await gather_bounded(range(20), fetch, limit=3) == {i: i * 10 for i in range(20)}
    assert most == 3


async def test_the_first_failure_is_raised_as_itself_and_cancels_the_others() -> None:
    finished: list[int] = []

    async def fetch(item: int) -> int:
        if item == 0:
            raise AutoReconnect("store gone")
        await asyncio.sleep(0.05)
        finished.append(item)
        return item

    with pytest.raises(AutoReconnect):  # not an ExceptionGroup: retry decisions look at types
        await gather_bounded(range(5), fetch)
    await asyncio.sleep(0.1)
    assert finished == []


class _CountingCollection:
    """Records how many operations its bulk writes have under way at once, as FerretDB holds a
    connection for each update statement of a command until the command ends."""

    def __init__(self) -> None:
        self.under_way = 0
        self.most = 0
        self.commands: list[int] = []  # each command's operations

    async def bulk_write(self, ops: list[object], ordered: bool) -> BulkWriteResult:
        self.commands.append(len(ops))
        self.under_way += len(ops)
        self.most = max(self.most, self.under_way)
        await asyncio.sleep(0.001)
        self.under_way -= len(ops)
        return BulkWriteResult({"nMatched": len(ops), "nInserted": 0, "nUpserted": 0,
                                "nRemoved": 0}, acknowledged=True)


async def test_chunked_writes_have_at_most_chunk_times_concurrency_operations_under_way() -> None:
    collection = _CountingCollection()
    ops = [UpdateOne({"_id": i}, {"$set": {"n": i}}) for i in range(480)]  # six full rounds

    result = await bulk_write_chunked(collection, ops, 10, 8)  # type: ignore[arg-type]

    assert result.matched_count == 480
    assert collection.most == 80


async def test_a_batch_just_over_one_round_is_spread_so_no_slot_writes_two_full_commands(
) -> None:
    collection = _CountingCollection()
    ops = [UpdateOne({"_id": i}, {"$set": {"n": i}}) for i in range(90)]

    result = await bulk_write_chunked(collection, ops, 10, 8)  # type: ignore[arg-type]

    # 9 commands of 10 would leave one slot a second command of 10 after the other seven end
    assert result.matched_count == 90
    assert sum(collection.commands) == 90
    assert max(collection.commands) == 6
    assert len(collection.commands) == 15


def test_two_state_machines_writing_at_once_fit_in_ferretdbs_pool_with_room_left() -> None:
    # Per state machine: a batch's update commands side by side, its rejections consumer's
    # command, and its reads (a batch reads before it writes, but the rejections consumer may
    # write meanwhile). Two run at once in a rebalance, or a replay beside the live one.
    held = WRITE_CONCURRENCY * FERRETDB_WRITE_CHUNK + FERRETDB_WRITE_CHUNK + READ_CONCURRENCY
    assert 2 * held <= FERRETDB_POOL_CONNECTIONS - 40  # the query API's and the ingestor's
