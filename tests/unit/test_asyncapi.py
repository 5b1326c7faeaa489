"""The event contract's AsyncAPI documents (contracts/asyncapi/): committed as the apps
generate them, every message a contracts model, and served by the ingestor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import structlog
from pydantic import SecretStr

from contracts.topics import DECISIONS_TOPIC
from ingestor import asyncapi as ingestor_asyncapi
from ingestor.app import create_app
from ingestor.settings import Settings as IngestorSettings
from runtime.asyncapi import ASYNCAPI_DIR, SCHEMA_REF, TOPIC_MESSAGES, ContractDocument, rendered
from state_machine import asyncapi as state_machine_asyncapi

DOCUMENTS: tuple[tuple[str, Callable[[], ContractDocument]], ...] = (
    (ingestor_asyncapi.NAME, ingestor_asyncapi.document),
    (state_machine_asyncapi.NAME, state_machine_asyncapi.document),
)


@pytest.fixture(autouse=True)
def logging_untouched() -> Iterator[None]:
    """Building the state machine's app configures logging; leave other tests theirs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_committed_asyncapi_documents_are_what_the_apps_generate(
    name: str, document: Callable[[], ContractDocument]
) -> None:
    for file_name, text in rendered(name, document()).items():
        path = ASYNCAPI_DIR / file_name
        committed = path.read_text() if path.exists() else None
        assert committed == text, (
            f"contracts/asyncapi/{file_name} is stale: run `make schemas` "
            f"(python -m {name}.asyncapi)")


@pytest.mark.parametrize(("name", "document"), DOCUMENTS, ids=[n for n, _ in DOCUMENTS])
def test_every_message_of_a_topic_is_that_topics_contracts_model(
    name: str, document: Callable[[], ContractDocument]
) -> None:
    doc = document().to_jsonable()
    payloads: dict[str, set[str]] = {}
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            message = doc["components"]["messages"][unquote(ref["$ref"].rsplit("/", 1)[1])]
            payloads.setdefault(channel["address"], set()).add(message["payload"]["$ref"])
    assert payloads, f"{name} documents no channel"
    for address, refs in payloads.items():
        assert refs == {SCHEMA_REF + TOPIC_MESSAGES[address].__name__}, (address, refs)


async def test_the_ingestor_serves_its_asyncapi_document() -> None:
    settings = IngestorSettings(tiktok_app_key="key", tiktok_app_secret=SecretStr("secret"))
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ingestor") as client:
        as_json = await client.get("/asyncapi.json")
        as_html = await client.get("/asyncapi")
    assert as_json.status_code == 200
    served: dict[str, Any] = as_json.json()
    assert served["info"]["title"] == "TikTok returns ingestor"
    # the app alone: its publishers and no consumer (the decisions topic has only a consumer)
    assert {c["address"] for c in served["channels"].values()} == set(TOPIC_MESSAGES) - {
        DECISIONS_TOPIC}
    assert as_html.status_code == 200
    assert "text/html" in as_html.headers["content-type"]
    assert "AsyncApiStandalone.render" in as_html.text
