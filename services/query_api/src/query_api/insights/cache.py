"""Answers kept for a while: on FerretDB, the insights of a large shop take many seconds (it
decodes every document of the shop it reads), and a seller looks at the same window again and
again. Concurrent asks for the same key share one computation; a failed one is not kept."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Entry(Generic[V]):
    task: asyncio.Future[V]
    expires: float = math.inf  # set once the answer is there


class AnswerCache(Generic[K, V]):
    """Each answer is kept `ttl_s` from the moment it is ready; at most `size` answers."""

    def __init__(self, ttl_s: float, size: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s, self._size, self._clock = ttl_s, size, clock
        self._entries: dict[K, _Entry[V]] = {}

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        """The kept answer for `key`, or the one `compute` gives (computed once for all who
        ask meanwhile; a requester that goes away does not cancel it for the others)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires <= self._clock():
            entry = _Entry(asyncio.ensure_future(compute()))
            entry.task.add_done_callback(lambda _: self._ready(entry))
            self._entries.pop(key, None)  # to the end of the order
            self._entries[key] = entry
            while len(self._entries) > self._size:  # the oldest asked first
                del self._entries[next(iter(self._entries))]
        try:
            return await asyncio.shield(entry.task)
        except Exception:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise

    def _ready(self, entry: _Entry[V]) -> None:
        entry.expires = self._clock() + self._ttl_s
