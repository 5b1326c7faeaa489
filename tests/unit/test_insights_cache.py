"""The insights' answer cache: kept a while, computed once for concurrent asks, never kept when
the computation failed, and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from query_api.insights.cache import AnswerCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_asks_share_one_computation_kept_a_while_from_when_it_is_ready() -> None:
    clock, calls = Clock(), []
    cache: AnswerCache[str, int] = AnswerCache(30, 8, clock)

    async def compute() -> int:
        calls.append(1)
        await asyncio.sleep(0.01)
        return len(calls)

    first = asyncio.ensure_future(cache.get("k", compute))
    await asyncio.sleep(0)
    clock.now = 100  # the computation is slow: the answer is kept from when it is ready
    assert list(await asyncio.gather(first, cache.get("k", compute))) == [1, 1]
    clock.now = 129.9
    assert await cache.get("k", compute) == 1
    clock.now = 130
    assert await cache.get("k", compute) == 2
    assert len(calls) == 2


async def test_a_failed_computation_is_not_kept() -> None:
    cache: AnswerCache[str, int] = AnswerCache(30, 8, Clock())

    async def fail() -> int:
        raise RuntimeError("database away")

    async def succeed() -> int:
        return 7

    with pytest.raises(RuntimeError):
        await cache.get("k", fail)
    assert await cache.get("k", succeed) == 7


async def test_the_cache_keeps_only_the_latest_answers() -> None:
    cache: AnswerCache[int, int] = AnswerCache(30, 2, Clock())
    computed: list[int] = []

    def compute(n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            computed.append(n)
            return n
        return run

    for n in (1, 2, 3):
        await cache.get(n, compute(n))
    await cache.get(3, compute(3))  # kept
    await cache.get(1, compute(1))  # the oldest: dropped, computed again
    assert computed == [1, 2, 3, 1]
