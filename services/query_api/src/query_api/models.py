"""Response models: they make the OpenAPI document describe exactly what the API returns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.messages import RejectedEvent, ReturnDetails
from contracts.read_model import EventRecord, HistoryEntry, Outcome, ReturnState


class ReturnView(ReturnState):
    """A return as the list shows it: its current state and id, without its history."""

    id: str = Field(description='"shop_id:return_id"')

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ReturnView:
        """Build from a read-model document (its bookkeeping fields are ignored)."""
        return cls.model_validate({**doc, "id": doc["_id"]})


class ReturnDetailView(ReturnView):
    """One return with its whole timeline, oldest first: every distinct event once, with what
    it came to, and the statuses inferred between them."""

    history: list[HistoryEntry]

    @classmethod
    def from_documents(cls, doc: dict[str, Any], events: list[dict[str, Any]]) -> ReturnDetailView:
        records = [EventRecord.model_validate(e) for e in events]
        records.sort(key=lambda r: (r.update_time, r.rank))
        return cls.model_validate({**doc, "id": doc["_id"], "history": timeline(records)})


def timeline(records: list[EventRecord]) -> list[HistoryEntry]:
    """History entries of a return's events, in fold order."""
    entries: list[HistoryEntry] = []
    for record in records:
        event = record.event
        entries += [
            HistoryEntry(event_id=None, status=status, update_time=event.update_time,
                         outcome=Outcome.INFERRED, note=f"missed; implied by {event.event_id}")
            for status in record.inferred
        ]
        entries.append(HistoryEntry(
            event_id=event.event_id, status=event.status, update_time=event.update_time,
            outcome=record.outcome, source=event.source, notification_id=event.notification_id,
            actor=event.actor, observed_at=event.observed_at,
            details=event.details if event.details != ReturnDetails() else None,
            reason=record.reason, note=record.note, deliveries=record.deliveries,
        ))
    return entries


class ReturnsPage(BaseModel):
    items: list[ReturnView]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )


class StatusCounts(BaseModel):
    shop_id: str | None
    counts: dict[str, int] = Field(
        description='"ALL" and every canonical status (0 when there is none), in tab order'
    )


class RejectionView(RejectedEvent):
    """An event that could not be applied, as the state machine recorded it."""

    model_config = ConfigDict(extra="ignore")

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> RejectionView:
        return cls.model_validate({k: v for k, v in doc.items() if k != "_id"})


class RejectionsPage(BaseModel):
    items: list[RejectionView]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )


class Label(BaseModel):
    key: str = Field(description='a canonical value (or "ALL"), as the API takes it')
    label: str = Field(description="what the seller sees")


class DashboardMeta(BaseModel):
    tabs: list[Label] = Field(description='the status tabs in display order, "ALL" first')
    reverse_types: list[Label]


class ErrorMessage(BaseModel):
    detail: str


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationFailure(BaseModel):
    """422: what was wrong, in one line (naming the valid values), and pydantic's details."""

    message: str
    detail: list[ValidationIssue]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    mongodb: bool
    indexes: bool
