"""What a sync job records: its counts, the error that failed it, and the writes that must be
done before its command is acknowledged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pymongo.errors import PyMongoError

from ingestor.tiktok_client import TikTokApiError
from runtime.retry import until_done

T = TypeVar("T")


@dataclass
class Counts:
    pages: int = 0
    returns_seen: int = 0
    events_published: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"pages": self.pages, "returns_seen": self.returns_seen,
                "events_published": self.events_published, "rejected": self.rejected}


class SyncFailed(Exception):
    """The sync cannot be done; the message is the job's `error`."""


def api_error_text(exc: TikTokApiError) -> str:
    """Readable, and free of secrets (the client never puts tokens in its errors)."""
    parts = [f"TikTok API refused the request: {exc.reason}"]
    extra = [f"code {exc.code}" if exc.code is not None else "",
             f"HTTP {exc.http_status}" if exc.http_status is not None else "",
             f"request_id {exc.request_id}" if exc.request_id else ""]
    extra = [e for e in extra if e]
    if extra:
        parts.append(f"({', '.join(extra)})")
    if exc.message and exc.message != exc.reason:
        parts.append(f"- {exc.message}")
    if exc.retryable:
        parts.append("[gave up after retries]")
    return " ".join(parts)


async def until_stored(what: str, action: Callable[[], Awaitable[T]]) -> T:
    """A MongoDB read or write the sync cannot go on without: retried while MongoDB fails."""
    return await until_done(f"sync store: {what}", action, retry_on=PyMongoError)
