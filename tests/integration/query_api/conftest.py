"""The query API test files' fixtures: a seeded FerretDB database and the app over ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from contracts.read_model import (
    DEFAULT_RETURNS_COLLECTION,
    REJECTIONS_COLLECTION,
    counts_collection,
    events_collection,
)
from query_api.api import create_app
from tests.integration.query_api.data import (
    DOCS,
    REJECTION_DOCS,
    Doc,
    counts_documents,
    history_document,
    make_settings,
    serve,
)


@pytest.fixture(scope="module")
def database_name() -> str:
    return f"query_api_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
async def mongo(mongodb_url: str, database_name: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongodb_url, tz_aware=True)
    db = client[database_name]
    await db[DEFAULT_RETURNS_COLLECTION].insert_many(DOCS)
    await db[events_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(
        [history_document(d) for d in DOCS])
    await db[counts_collection(DEFAULT_RETURNS_COLLECTION)].insert_many(counts_documents(DOCS))
    await db[REJECTIONS_COLLECTION].insert_many(REJECTION_DOCS)
    yield client
    await client.drop_database(database_name)
    await client.close()


@pytest.fixture(scope="module")
async def api(
    mongo: AsyncMongoClient[Doc], mongodb_url: str, database_name: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(mongodb_url=mongodb_url, mongodb_database=database_name)
    async with serve(create_app(settings)) as client:
        yield client
