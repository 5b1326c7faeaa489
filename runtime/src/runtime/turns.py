"""Turns per key inside one process: what must not run for one key at the same moment (a
return's decisions, a shop's token renewal) takes its key's turn. A key's lock lives while a
task holds or waits for it, so keys without end (every return) cost no memory once done."""

from __future__ import annotations

import asyncio
import weakref


class KeyedTurns:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = \
            weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        """The lock of `key`: `async with turns(key): ...`."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
