"""`gather_bounded`, which the state machine's reads and its counts writes go through: its
bound, and a failure that stops the rest instead of leaving writes running behind the retry."""

from __future__ import annotations

import asyncio

import pytest
from pymongo.errors import AutoReconnect

from state_machine.mongo import gather_bounded


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
