"""MongoDB adapter of the query API (pymongo's async API).

The returns collection to read is named by the `meta` document `active_read_model` (so a
rebuilt read model can be switched in atomically); it is cached for a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from contracts.messages import return_key
from contracts.read_model import (
    ACTIVE_READ_MODEL_ID,
    COUNTS_INDEXES,
    DEFAULT_RETURNS_COLLECTION,
    EVENTS_INDEXES,
    META_COLLECTION,
    REJECTIONS_COLLECTION,
    REJECTIONS_INDEXES,
    RETURNS_INDEXES,
    CountsDocument,
    counts_collection,
    events_collection,
)
from query_api import deadlines, pages, queries
from runtime.indexes import ensure_indexes

Document = dict[str, Any]
log = structlog.get_logger("query_api.repository")


EXPORT_BATCH_SIZE = 500


class ReturnsRepository:
    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._db: AsyncDatabase[Document] = client[database]
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._active: str | None = None
        self._active_expires = 0.0
        self._indexed: set[str] = set()

    async def active_collection_name(self) -> str:
        """Name of the returns collection the API reads (meta doc, default "returns")."""
        now = self._clock()
        if self._active is not None and now < self._active_expires:
            return self._active
        meta = await self._db[META_COLLECTION].find_one({"_id": ACTIVE_READ_MODEL_ID})
        name = meta.get("collection") if meta else None
        if not isinstance(name, str) or not name or name.startswith(("system.", "$")):
            if meta is not None:
                log.warning("meta_active_read_model_invalid", value=repr(name))
            name = DEFAULT_RETURNS_COLLECTION
        if name != self._active:
            log.info("active_returns_collection", collection=name, previous=self._active)
        self._active = name
        self._active_expires = now + self._cache_seconds
        return name

    async def _returns(self) -> AsyncCollection[Document]:
        return self._db[await self.active_collection_name()]

    async def ensure_indexes(self) -> str:
        """Create every index of RETURNS_INDEXES on the active collection (and those of
        REJECTIONS_INDEXES on the rejections collection); return the returns collection's name."""
        name = await self.active_collection_name()
        await ensure_indexes(self._db[name], RETURNS_INDEXES)
        await ensure_indexes(self._db[events_collection(name)], EVENTS_INDEXES)
        await ensure_indexes(self._db[counts_collection(name)], COUNTS_INDEXES)
        await ensure_indexes(self._db[REJECTIONS_COLLECTION], REJECTIONS_INDEXES)
        self._indexed.add(name)
        log.info("indexes_ensured", collection=name, rejections=REJECTIONS_COLLECTION)
        return name

    @property
    def indexes_ready(self) -> bool:
        """Whether the indexes were ensured on the collection currently known as active."""
        return self._active is not None and self._active in self._indexed

    async def list_returns(self, params: queries.ListParams) -> tuple[list[Document], str | None]:
        """One page of returns, newest update first, and the cursor of the next page (or None).
        A shop's tab is read bucket by bucket (query_api.pages); other lists by one query."""
        name = await self.active_collection_name()
        if pages.walks_buckets(params):
            docs = await self._walk_buckets(name, params)
        else:
            cursor = self._db[name].find(queries.build_filter(params)).sort(queries.build_sort())
            docs = await cursor.limit(params.limit + 1).to_list()
        return docs[: params.limit], queries.next_cursor(docs, params.limit)

    async def _walk_buckets(self, name: str, params: queries.ListParams) -> list[Document]:
        shop_id = str(params.shop_id)
        counts = [CountsDocument.model_validate(doc) async for doc in
                  self._db[counts_collection(name)].find({"shop_id": shop_id})]
        statuses = [status.value for status in dict.fromkeys(params.statuses)]
        histogram = pages.day_histogram(counts, statuses)
        found: list[Document] = []
        for group in pages.reads(histogram, params.after, params.limit):
            filters = [f for read in group for f in pages.bucket_filters(shop_id, statuses, read)]
            results = await asyncio.gather(*(self._db[name].find(f).to_list() for f in filters))
            found += [doc for docs in results for doc in docs
                      if pages.after_cursor(doc, params.after)]
            if len(found) > params.limit:
                break
        return pages.newest_first(found)[: params.limit + 1]

    async def export_returns(self, params: queries.ListParams) -> AsyncIterator[Document]:
        """Every return matching the list's filters (no page), newest update first, streamed.

        The first batch is fetched before this returns, so an unreachable database fails the
        request (503) instead of cutting a response already under way.
        """
        collection = await self._returns()
        cursor = (
            collection.find(queries.build_match(params))
            .sort(queries.build_sort())
            .batch_size(EXPORT_BATCH_SIZE)
        )
        try:
            first: Document | None = await cursor.next()
        except StopAsyncIteration:
            first = None

        async def documents() -> AsyncIterator[Document]:
            try:
                if first is None:
                    return
                yield first
                async for doc in cursor:
                    yield doc
            finally:
                await cursor.close()

        return documents()

    async def list_rejections(
        self, params: queries.RejectionParams
    ) -> tuple[list[Document], str | None]:
        """One page of rejections, newest first, and the cursor of the next page (or None)."""
        cursor = (
            self._db[REJECTIONS_COLLECTION]
            .find(queries.build_rejection_filter(params))
            .sort(list(queries.REJECTIONS_SORT))
        )
        docs = await cursor.limit(params.limit + 1).to_list()
        return docs[: params.limit], queries.next_rejection_cursor(docs, params.limit)

    async def get_return(
        self, shop_id: str, return_id: str
    ) -> tuple[Document, list[Document]] | None:
        """A return's document and its history's documents (in no particular order)."""
        name = await self.active_collection_name()
        key = return_key(str(shop_id), str(return_id))
        doc = await self._db[name].find_one({"_id": key})
        if doc is None:
            return None
        events = await self._db[events_collection(name)].find({"return_key": key}).to_list()
        return doc, events

    async def find_return(self, shop_id: str, return_id: str) -> Document | None:
        """A return's document, without its history."""
        return await (await self._returns()).find_one({"_id": return_key(shop_id, return_id)})

    async def needs_action(self, params: deadlines.NeedsActionParams
                           ) -> tuple[list[Document], str | None]:
        """Returns waiting on the seller, soonest deadline first, and the next page's cursor."""
        cursor = (await self._returns()).find(deadlines.needs_action_filter(params))
        docs = await cursor.sort(list(deadlines.NEEDS_ACTION_SORT)).limit(
            params.limit + 1).to_list()
        return docs[: params.limit], deadlines.next_deadline_cursor(docs, params.limit)

    async def count_by_status(self, shop_id: str | None) -> dict[str, int]:
        """From the counts the state machine keeps per shop and partition: O(statuses)."""
        counts = self._db[counts_collection(await self.active_collection_name())]
        query = {} if shop_id is None else {"shop_id": str(shop_id)}
        total: dict[str, int] = {}
        async for doc in counts.find(query, {"counts": 1, "shop_id": 1, "partition": 1,
                                             "offset": 1}):
            for status, n in CountsDocument.model_validate(doc).counts.items():
                total[status] = total.get(status, 0) + n
        return queries.counts_by_status([{"_id": s, "n": n} for s, n in total.items() if n])

    async def ping(self) -> bool:
        try:
            await self._client.admin.command("ping")
        except Exception as exc:  # any failure means "not ready"
            log.warning("mongodb_ping_failed", error=str(exc))
            return False
        return True
