"""The event contract as AsyncAPI documents: FastStream's description of a service's broker,
with the payload of each consumed channel named from `contracts`, written to contracts/asyncapi/.

FastStream takes a subscriber's payload from its handler's signature. The services' handlers
take the raw bytes and validate each record themselves (one bad record is rejected on its own
instead of failing its batch), so FastStream sees `bytes` there; the message a topic carries is
named here instead (`TOPIC_MESSAGES`). Publishers declare their model and are left as they are.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from pydantic import BaseModel

from contracts.decisions import DecisionCommand
from contracts.messages import RejectedEvent, ReturnEvent, SyncCommand
from contracts.schemas import SCHEMA_DIR
from contracts.topics import DECISIONS_TOPIC, EVENTS_TOPIC, REJECTED_TOPIC, SYNC_COMMANDS_TOPIC

ASYNCAPI_DIR = SCHEMA_DIR.parent / "asyncapi"
SCHEMA_REF = "#/components/schemas/"

TOPIC_MESSAGES: Mapping[str, type[BaseModel]] = {
    EVENTS_TOPIC: ReturnEvent,
    REJECTED_TOPIC: RejectedEvent,
    SYNC_COMMANDS_TOPIC: SyncCommand,
    DECISIONS_TOPIC: DecisionCommand,
}


class Specification(Protocol):
    """What FastStream's `AsyncAPI(...).to_specification()` returns, as far as used here."""

    def to_jsonable(self) -> Any: ...


@dataclass(frozen=True)
class ContractDocument:
    """An AsyncAPI document; FastStream's `Specification` protocol, so that
    `faststream.specification.get_asyncapi_html` can show it."""

    document: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def to_jsonable(self) -> dict[str, Any]:
        return self.document

    # Keys sorted: FastStream's order of channels follows its subscribers' registry, which is
    # not the same from one process to the next.
    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=True) + "\n"

    def to_yaml(self) -> str:
        # A development dependency, imported here: only the generator writes YAML.
        import yaml  # noqa: PLC0415

        return yaml.safe_dump(self.document, sort_keys=True, width=100)


def _name(ref: str) -> str:
    """The last part of a local `$ref`, unquoted (FastStream URL-quotes its keys)."""
    return unquote(ref.rsplit("/", 1)[1])


def _refs(node: Any) -> set[str]:
    """Every `$ref` in a document."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def contract_document(specification: Specification) -> ContractDocument:
    """FastStream's document with every consumed channel's payload set to its topic's model."""
    document: dict[str, Any] = copy.deepcopy(specification.to_jsonable())
    components = document.setdefault("components", {})
    messages: dict[str, Any] = components.setdefault("messages", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    replaced: set[str] = set()
    for operation in document.get("operations", {}).values():
        if operation["action"] != "receive":
            continue
        channel = document["channels"][_name(operation["channel"]["$ref"])]
        model = TOPIC_MESSAGES.get(channel["address"])
        if model is None:
            raise LookupError(f"no contracts message for topic {channel['address']!r}: "
                              "add it to runtime.asyncapi.TOPIC_MESSAGES")
        for ref in channel["messages"].values():
            message = messages[_name(ref["$ref"])]
            if "$ref" in message["payload"]:
                replaced.add(_name(message["payload"]["$ref"]))
            message["payload"] = {"$ref": SCHEMA_REF + model.__name__}
        if model.__name__ not in schemas:
            schema = model.model_json_schema(ref_template=SCHEMA_REF + "{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
    used = {_name(ref) for ref in _refs(document) if ref.startswith(SCHEMA_REF)}
    for name in replaced - used:
        del schemas[name]  # FastStream's `bytes` payloads, no longer used
    return ContractDocument(document)


def rendered(name: str, document: ContractDocument) -> dict[str, str]:
    """File name -> text of the YAML and JSON renderings of a service's document."""
    return {f"{name}.yaml": document.to_yaml(), f"{name}.json": document.to_json()}


def write(name: str, document: ContractDocument, directory: Path = ASYNCAPI_DIR) -> None:
    directory.mkdir(exist_ok=True)
    for file_name, text in rendered(name, document).items():
        (directory / file_name).write_text(text)
        print(f"wrote {directory / file_name}")
