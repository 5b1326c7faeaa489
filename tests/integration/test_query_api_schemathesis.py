"""Property-based conformance of the query API to its own OpenAPI document (schemathesis).

The real service runs as a process (`python -m query_api`, uvicorn) on the session's real
FerretDB and Kafka, over a database seeded with returns and rejections; schemathesis
generates requests for every operation of `/openapi.json` (valid and invalid ones), sends them
with an ops token, and fails on any 5xx and on any response its schema does not describe
(status code, content type, headers, body).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pymongo import AsyncMongoClient
from schemathesis import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from contracts.read_model import DEFAULT_RETURNS_COLLECTION, REJECTIONS_COLLECTION
from devinfra.proc import free_port
from query_api.api import create_app
from query_api.settings import Settings
from tests.integration.conftest import APP_KEY, APP_SECRET
from tests.integration.query_api.data import DOCS, REJECTION_DOCS
from tests.integration.services import ServiceProcess, http_ok, wait_until

pytestmark = pytest.mark.integration

OPS_TOKEN = "schemathesis-ops"
MAX_EXAMPLES = 30  # per operation: the whole module runs in well under a minute
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
async def seeded_database(mongodb_url: str) -> AsyncIterator[str]:
    name = f"schemathesis_{uuid.uuid4().hex[:10]}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url, tz_aware=True)
    try:
        await client[name][DEFAULT_RETURNS_COLLECTION].insert_many([dict(d) for d in DOCS])
        await client[name][REJECTIONS_COLLECTION].insert_many([dict(d) for d in REJECTION_DOCS])
        yield name
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture(scope="module")
def query_api_url(
    seeded_database: str,
    mongodb_url: str,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    port = free_port()
    process = ServiceProcess(
        "query_api",
        {
            "MONGODB_URL": mongodb_url,
            "MONGODB_DATABASE": seeded_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "QUERY_API_PORT": str(port),
            "QUERY_API_TOKENS": f'{{"{OPS_TOKEN}": ["*"]}}',
            "TIKTOK_APP_KEY": APP_KEY,
            "TIKTOK_APP_SECRET": APP_SECRET,
            "LOG_LEVEL": "WARNING",
        },
        tmp_path_factory.mktemp("schemathesis") / "query_api.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        process.start()
        wait_until(lambda: http_ok(f"{url}/readyz"), 60, "query API ready")
        yield url
    finally:
        process.stop()
        print(f"--- query_api log tail ---\n{process.log_tail(30)}")


# The document is built by the very code the server runs (`schemathesis.pytest.from_fixture`,
# which would load it from the server, does not work with pytest 9); the test below checks that
# the server serves this same document.
OPENAPI = create_app(Settings(query_api_tokens={OPS_TOKEN: ["*"]})).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_the_server_serves_the_document_under_test(query_api_url: str) -> None:
    assert httpx.get(f"{query_api_url}/openapi.json").json() == OPENAPI


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests on every run: a failure is reproducible
)
def test_the_query_api_conforms_to_its_openapi_document(
    case: Case[Any], query_api_url: str
) -> None:
    case.call_and_validate(
        base_url=query_api_url,
        headers={"Authorization": f"Bearer {OPS_TOKEN}"},
        checks=CHECKS,
    )
