"""The stored documents of the read model, to and from the state machine's own types: one
function a direction per collection. A document is encoded before anything is written, so one
MongoDB cannot hold fails the batch's planning, not half its writes."""

from __future__ import annotations

from typing import Any

import bson
from pymongo.errors import DocumentTooLarge

from contracts.deadlines import deadline_fields
from contracts.read_model import EventRecord, ReturnState, page_fields
from state_machine.batch import Change, CountsKey, Stored, StoredEvent
from state_machine.domain import Fact, Verdict

Document = dict[str, Any]
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def _encoded(doc: Document) -> Document:
    """The document, once it is known that MongoDB can hold it: a value it cannot encode (an
    integer past 64 bits) or a document over 16 MiB fails here, before anything is written."""
    if len(bson.encode(doc)) > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(f"document {doc.get('_id')!r} is larger than 16 MiB")
    return doc


def return_document(change: Change, batch_id: str) -> Document:
    """Without its null fields, as a history document (`event_document`): every one has a
    default, so the state reads back the same, and a return of the benchmark's workload has 12
    fewer fields for FerretDB to store a type beside. `python -m
    bench.state_machine_throughput --events 60000 --returns 12000`: 1,322 events/s without
    them, 1,239 with."""
    assert change.state is not None
    state = change.state
    return _encoded(state.model_dump(mode="json", exclude_none=True) | {
        **page_fields(state.shop_id, state.status.value, state.update_time),
        **deadline_fields(state.details.next_actions),
        "_id": change.key,
        "applied": {"partition": change.partition, "offset": change.offset},
        "last_key": list(change.last_key),
        "version": (change.expected_version or 0) + 1,
        "written_by": batch_id,
    })


def stored_return(doc: Document) -> Stored:
    position = doc.get("applied", {})
    last_key = doc.get("last_key") or (-1, -1)
    return Stored(
        state=ReturnState.model_validate(doc),
        partition=int(position.get("partition", -1)),
        offset=int(position.get("offset", -1)),
        version=int(doc.get("version", 0)),
        last_key=(int(last_key[0]), int(last_key[1])),
    )


def event_document(record: EventRecord) -> Document:
    """Without its null fields: every one has a default, so the record reads back the same,
    and the document is a quarter smaller (FerretDB also stores each field's type beside
    it). FerretDB inserted 9,300 a second with them and 12,000-14,000 without."""
    return _encoded(record.model_dump(mode="json", exclude_none=True)
                    | {"_id": record.event.event_id})


def stored_event(doc: Document) -> StoredEvent:
    record = EventRecord.model_validate(doc)
    return StoredEvent(
        fact=Fact(record.event, record.deliveries, record.last_observed_at),
        verdict=Verdict(record.outcome, tuple(record.inferred), record.reason, record.note),
        partition=record.partition,
        offset=record.offset,
        last_rejection=record.last_rejection,
    )


def counts_id(key: CountsKey) -> str:
    return f"{key[0]}:{key[1]}"
