"""The app's lifespan: one MongoDB client for every router, and the read model's indexes
(retried in the background while MongoDB is not reachable, so the API starts regardless)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import structlog
from fastapi import FastAPI
from pymongo.errors import PyMongoError

from query_api.repository import ReturnsRepository
from query_api.settings import Settings
from runtime.mongo import mongo_client
from runtime.retry import Stopped, until_done

log = structlog.get_logger("query_api")

INDEX_RETRY_MAX_DELAY_S = 30.0


async def _ensure_indexes_until_done(repository: ReturnsRepository, stop: asyncio.Event) -> None:
    """Background retry when MongoDB was not reachable at start-up; ends when `stop` is set.

    Stopped by an event rather than by cancellation: with pymongo 4.20 a cancellation delivered
    while it selects a server was seen to be swallowed, leaving this task (and shutdown) hanging.
    """
    with contextlib.suppress(Stopped):
        await until_done("ensure_indexes", repository.ensure_indexes, retry_on=PyMongoError,
                         stop=stop, initial_s=1, max_s=INDEX_RETRY_MAX_DELAY_S)


def lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        client = mongo_client(settings.mongodb_url, settings.mongodb_timeout_ms)
        repository = ReturnsRepository(
            client,
            settings.mongodb_database,
            cache_seconds=settings.active_collection_cache_seconds,
        )
        app.state.repository = repository
        app.state.mongo = client  # one connection pool for every router of this app
        stop = asyncio.Event()
        retry: asyncio.Task[None] | None = None
        try:
            await repository.ensure_indexes()
        except PyMongoError as exc:
            log.warning("ensure_indexes_failed_at_startup", error=str(exc))
            retry = asyncio.create_task(_ensure_indexes_until_done(repository, stop))
        try:
            yield
        finally:
            stop.set()
            if retry is not None:
                # an attempt under way ends within the server selection timeout
                grace = settings.mongodb_timeout_ms / 1000 + 1
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(retry, grace)
            await client.close()

    return run
