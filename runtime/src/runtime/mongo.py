"""The services' MongoDB client, made alike: timezone-aware dates, and a server that does not
answer fails a call within the timeout instead of hanging it."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient


def mongo_client(url: str, timeout_ms: int) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(url, serverSelectionTimeoutMS=timeout_ms,
                            connectTimeoutMS=timeout_ms, tz_aware=True)
