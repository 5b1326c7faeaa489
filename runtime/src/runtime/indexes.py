"""Create the indexes a service's queries need, at start-up (idempotent)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection

IndexSpec = tuple[list[tuple[str, int]], str]  # (keys, name)


async def ensure_indexes(collection: AsyncCollection[Any], specs: Iterable[IndexSpec]) -> None:
    # One index per command: FerretDB 1.24 panics (and drops the connection) on a
    # createIndexes of several indexes that all exist already, i.e. on every restart.
    for keys, name in specs:
        await collection.create_indexes([IndexModel(keys, name=name)])
