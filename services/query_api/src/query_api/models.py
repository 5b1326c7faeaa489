"""Response models: they make the OpenAPI document describe exactly what the API returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.decisions import DecisionRecord, SellerDecision, allowed_decisions
from contracts.messages import RejectedEvent, ReturnDetails
from contracts.read_model import EventRecord, HistoryEntry, Outcome, ReturnState


class ReturnView(ReturnState):
    """A return as the list shows it: its current state and id, without its history."""

    id: str = Field(description='"shop_id:return_id"')
    allowed_decisions: list[SellerDecision] = Field(
        default_factory=list, description="the decisions the return offers in its status")

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ReturnView:
        """Build from a read-model document (its bookkeeping fields are ignored)."""
        return cls.model_validate({**doc, "id": doc["_id"], **_offers(doc)})


def _offers(doc: dict[str, Any]) -> dict[str, Any]:
    state = ReturnState.model_validate(doc)
    return {"allowed_decisions": list(allowed_decisions(state.reverse_type, state.status))}


class DecisionView(BaseModel):
    """A seller's decision on a return and what became of it."""

    decision_id: str
    shop_id: str
    return_id: str
    decision: SellerDecision
    tiktok_decision: str | None = Field(description="the value sent to TikTok (202309)")
    reason: str | None
    comment: str | None
    label: str = Field(description="the label of the token that took it")
    status: str = Field(description="queued, sent, accepted, refused or failed")
    message: str | None = Field(description="TikTok's answer when refused, or why it failed")
    code: int | None = Field(description="TikTok's error code when refused")
    return_status: str = Field(description="the return's status when it was decided")
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, record: DecisionRecord) -> DecisionView:
        return cls.model_validate(record.model_dump() | {
            "decision_id": str(record.decision_id), "return_status": record.return_status.value,
            "tiktok_decision": record.tiktok_decision.value if record.tiktok_decision else None,
            "status": record.status.value})


class ReturnDetailView(ReturnView):
    """One return with its whole timeline, oldest first: every distinct event once, with what
    it came to, and the statuses inferred between them; and the seller's decisions on it."""

    history: list[HistoryEntry]
    decisions: list[DecisionView] = Field(default_factory=list,
                                          description="oldest first, joined at read time")

    @classmethod
    def from_documents(cls, doc: dict[str, Any], events: list[dict[str, Any]],
                       decisions: Sequence[DecisionRecord] = ()) -> ReturnDetailView:
        records = [EventRecord.model_validate(e) for e in events]
        records.sort(key=lambda r: (r.update_time, r.rank))
        return cls.model_validate({**doc, "id": doc["_id"], "history": timeline(records),
                                   "decisions": [DecisionView.of(d) for d in decisions],
                                   **_offers(doc)})


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
