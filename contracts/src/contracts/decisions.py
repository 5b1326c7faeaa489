"""Seller decisions (DOMAIN.md, "Seller decisions"): which decision fits which request, the
command that carries one to the ingestor, and the shape of its record.

The table lives here, once: the query API refuses a decision it does not allow (409), the
ingestor takes TikTok's `decision` value from it, and the dashboard is told which decisions a
return offers. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.limits import Id, Name, Text
from contracts.messages import return_key, utcnow
from contracts.statuses import ReturnStatus, ReverseType

DECISIONS_COLLECTION = "decisions"
# One document per return while a decision of it may still reach TikTok (`_id` = return key):
# the same decision posted again meanwhile gets the pending one instead of a second call.
DECISION_LOCKS_COLLECTION = "decision_locks"
# TikTok's reject reasons, cached per shop, reverse type, status and locale.
REJECT_REASONS_COLLECTION = "reject_reasons"
DEFAULT_LOCALE = "en-US"


class SellerDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class TikTokDecision(StrEnum):
    """The 202309 API's `decision` values (approve and reject endpoints)."""

    APPROVE_REFUND = "APPROVE_REFUND"
    REJECT_REFUND = "REJECT_REFUND"
    APPROVE_RETURN = "APPROVE_RETURN"
    REJECT_RETURN = "REJECT_RETURN"
    APPROVE_RECEIVED_PACKAGE = "APPROVE_RECEIVED_PACKAGE"
    REJECT_RECEIVED_PACKAGE = "REJECT_RECEIVED_PACKAGE"


D = TikTokDecision
DECISION_TABLE: Mapping[tuple[ReverseType, ReturnStatus], Mapping[SellerDecision, D]] = {
    (ReverseType.REFUND_ONLY, ReturnStatus.AFTERSALE_APPLYING): {
        SellerDecision.APPROVE: D.APPROVE_REFUND, SellerDecision.REJECT: D.REJECT_REFUND},
    (ReverseType.RETURN_AND_REFUND, ReturnStatus.AFTERSALE_APPLYING): {
        SellerDecision.APPROVE: D.APPROVE_RETURN, SellerDecision.REJECT: D.REJECT_RETURN},
    (ReverseType.RETURN_AND_REFUND, ReturnStatus.AFTERSALE_BUYER_SHIPPED): {
        SellerDecision.APPROVE: D.APPROVE_RECEIVED_PACKAGE,
        SellerDecision.REJECT: D.REJECT_RECEIVED_PACKAGE},
}


def allowed_decisions(
    reverse_type: ReverseType | None, status: ReturnStatus
) -> tuple[SellerDecision, ...]:
    """The decisions a return of this type in this status offers (none when its type is not
    known yet: the decision value depends on it)."""
    if reverse_type is None:
        return ()
    return tuple(DECISION_TABLE.get((reverse_type, status), {}))


def tiktok_decision(
    reverse_type: ReverseType | None, status: ReturnStatus, decision: SellerDecision
) -> TikTokDecision | None:
    """TikTok's `decision` value for this decision on such a return; None when it does not fit."""
    if reverse_type is None:
        return None
    return DECISION_TABLE.get((reverse_type, status), {}).get(decision)


class DecisionStatus(StrEnum):
    QUEUED = "queued"  # recorded and published; the ingestor has not called TikTok yet
    SENT = "sent"  # the ingestor is calling TikTok (recorded before the call)
    ACCEPTED = "accepted"  # TikTok said yes: the status changes when TikTok says so (webhook)
    REFUSED = "refused"  # TikTok said no, with its message
    FAILED = "failed"  # never reached TikTok (e.g. the shop is not configured), with why


PENDING_DECISIONS = frozenset({DecisionStatus.QUEUED, DecisionStatus.SENT})
FINISHED_DECISIONS = frozenset({DecisionStatus.ACCEPTED, DecisionStatus.REFUSED,
                                DecisionStatus.FAILED})

_IDEMPOTENCY_NAMESPACE = UUID("6f1c3c2e-7d0a-4d38-9a43-3a3f5f0e0d17")
MAX_IDEMPOTENCY_KEY_LENGTH = 128


def decision_id_for_key(shop_id: str, return_id: str, idempotency_key: str) -> UUID:
    """The id of the decision an `Idempotency-Key` names on one return: the same key gives the
    same decision, whoever sends it again."""
    return uuid5(_IDEMPOTENCY_NAMESPACE, f"{return_key(shop_id, return_id)}\n{idempotency_key}")


class DecisionCommand(BaseModel):
    """Ask the ingestor to send a seller's decision on one return to TikTok (key = return key).

    `decision_id` is also TikTok's `idempotency_key`: a command delivered twice reaches TikTok
    as one decision. `status` and `reverse_type` are the return's when the seller decided;
    TikTok's decision value is taken from them (`tiktok_decision`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    decision_id: UUID
    shop_id: Id
    return_id: Id
    decision: SellerDecision
    reverse_type: ReverseType
    status: ReturnStatus
    return_update_time: int = Field(ge=0, description="the return's update_time when decided")
    reason: Name | None = Field(default=None, description="TikTok's reject reason name")
    comment: Text | None = None
    label: Name = Field(description="the label of the token that decided (never the token)")
    requested_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _reason_for_reject_only(self) -> DecisionCommand:
        if self.decision is SellerDecision.REJECT and not self.reason:
            raise ValueError("a rejection needs a reason (one of TikTok's reject reasons)")
        if self.decision is SellerDecision.APPROVE and self.reason:
            raise ValueError("an approval takes no reason")
        return self

    @property
    def key(self) -> str:
        return return_key(self.shop_id, self.return_id)


class DecisionRecord(BaseModel):
    """A document of DECISIONS_COLLECTION (`_id` = decision id): one decision and its outcome.
    Written by the query API (queued) and the ingestor (everything after), through one
    repository (`runtime.decision_store`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision_id: UUID
    return_key: str  # top level: a return's decisions are read by equality on it
    shop_id: str
    return_id: str
    decision: SellerDecision
    tiktok_decision: TikTokDecision | None = None
    reverse_type: ReverseType
    return_status: ReturnStatus
    return_update_time: int
    reason: str | None = None
    comment: str | None = None
    label: str
    status: DecisionStatus
    message: str | None = Field(default=None, description="TikTok's answer, or why it failed")
    code: int | None = Field(default=None, description="TikTok's error code, when refused")
    attempts: int = 0
    created_at: datetime
    sent_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def queued(cls, command: DecisionCommand) -> DecisionRecord:
        return cls(
            decision_id=command.decision_id, return_key=command.key, shop_id=command.shop_id,
            return_id=command.return_id, decision=command.decision,
            tiktok_decision=tiktok_decision(command.reverse_type, command.status,
                                            command.decision),
            reverse_type=command.reverse_type, return_status=command.status,
            return_update_time=command.return_update_time, reason=command.reason,
            comment=command.comment, label=command.label, status=DecisionStatus.QUEUED,
            created_at=command.requested_at,
        )

    def same_request(self, command: DecisionCommand) -> bool:
        """Whether a command asks for the same thing as this decision (an idempotent retry)."""
        return (self.decision, self.reason, self.comment) == (
            command.decision, command.reason, command.comment)


class RejectReason(BaseModel):
    """One of TikTok's reject reasons for a request: `name` is what a rejection sends."""

    model_config = ConfigDict(frozen=True)

    name: Name
    text: Name = Field(description="what the seller reads, in the asked locale")


DECISIONS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("return_key", 1), ("created_at", 1)], "return_created"),
)
