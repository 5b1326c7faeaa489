"""Messages every service shares. Money is a Decimal (serialised as a string), never a float.

Every field that comes from outside is bounded by `contracts.limits`: validating a message
(as the state machine does with each record it consumes) refuses impossible values.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from contracts.deadlines import SellerAction
from contracts.limits import (
    INT64_MAX,
    MAX_ID_LENGTH,
    MAX_ITEMS,
    Amount,
    Count,
    CurrencyCode,
    Id,
    Name,
    Text,
    UnixTime,
    Url,
)
from contracts.statuses import ReturnStatus, ReverseType


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Money(_Message):
    amount: Amount = Field(description="finite decimal >= 0, at most 12 digits before the "
                           "point and 6 after, serialised as a string")
    currency: CurrencyCode


class ReturnItem(_Message):
    sku_id: Id | None = None
    seller_sku: Id | None = None
    product_name: Name | None = None
    sku_name: Name | None = None
    quantity: Count | None = None
    image_url: Url | None = None


class ReturnDetails(_Message):
    """What an event knows about a return besides its status. `None` means "not known by this
    event" and never erases a value known from an earlier one."""

    refund: Money | None = None
    reason: Name | None = None
    reason_text: Text | None = None
    items: tuple[ReturnItem, ...] | None = Field(default=None, max_length=MAX_ITEMS)
    tracking_number: Id | None = None
    request_time: UnixTime | None = None
    next_actions: tuple[SellerAction, ...] | None = Field(
        default=None, max_length=16,
        description="what TikTok waits for from the seller and by when; () = nothing (clears "
        "an earlier deadline), null = not known by this event")


class EventSource(StrEnum):
    WEBHOOK_LEGACY = "webhook_legacy"
    WEBHOOK_202309 = "webhook_202309"
    SYNC_LEGACY = "sync_legacy"
    SYNC_202309 = "sync_202309"


class ReturnEvent(_Message):
    """A change of one return as TikTok reported it, normalised to canonical names.

    Its identity is what changed (shop, return, status, update_time), not how it arrived:
    a webhook and a sync reporting the same change are the same event.
    """

    schema_version: Literal[1] = 1
    shop_id: Id
    return_id: Id
    order_id: Id
    status: ReturnStatus
    update_time: UnixTime = Field(description="when TikTok says the change happened, unix s")
    reverse_type: ReverseType | None = None
    details: ReturnDetails = ReturnDetails()
    source: EventSource
    notification_id: Id | None = Field(default=None, description="TikTok tts_notification_id")
    actor: Name | None = Field(default=None, description="who made the change, as TikTok says")
    observed_at: datetime = Field(default_factory=utcnow)

    @cached_property
    def key(self) -> str:
        """Kafka message key and read-model id: all events of one return share a partition."""
        return return_key(self.shop_id, self.return_id)

    @cached_property
    def event_id(self) -> str:
        return f"{self.key}:{self.status.value}:{self.update_time}"


def return_key(shop_id: str, return_id: str) -> str:
    return f"{shop_id}:{return_id}"


class RejectionReason(StrEnum):
    UNKNOWN_STATUS = "unknown_status"
    UNSUPPORTED_TYPE = "unsupported_type"
    INVALID_TRANSITION = "invalid_transition"
    FORBIDDEN_FOR_TYPE = "forbidden_for_type"
    UNDECODABLE = "undecodable"
    INVALID_EVENT = "invalid_event"
    # An event whose effect could not be stored (e.g. a value the database cannot hold): it
    # was taken out of its batch so that the events after it go on.
    UNPROCESSABLE = "unprocessable"


def raw_text(raw: bytes) -> str:
    """Input as the rejected topic keeps it (`RejectedEvent.raw`): utf-8 text, or `base64:` +
    its base64."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


class RejectedEvent(_Message):
    """Something that could not be applied, kept with its reason so an operator can see it."""

    rejection_id: str = Field(
        description="deterministic: the same input rejected twice has the same id"
    )
    reason: RejectionReason
    detail: str
    stage: Literal["ingestor", "state_machine"]
    shop_id: str | None = None
    return_id: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    event: ReturnEvent | None = None
    raw: str | None = Field(default=None, description="the input as received (utf-8, or base64:)")
    rejected_at: datetime = Field(default_factory=utcnow)
    withdrawn: bool = Field(
        default=False,
        description="a later, earlier-dated event made this rejection moot: kept, marked withdrawn",
    )


class SyncCommand(_Message):
    """Ask the ingestor to fetch new or changed returns of a shop from TikTok Shop."""

    command_id: UUID = Field(default_factory=uuid4)
    # Not yet `Id`: the query API's SyncRequest admits control characters, and refusing them
    # here would turn its 202 into a 500; tighten both together.
    shop_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    since: int | None = Field(default=None, ge=0, le=INT64_MAX,
                              description="update time from, unix s")
    until: int | None = Field(default=None, ge=0, le=INT64_MAX,
                              description="update time to, unix s")
    requested_by: str = Field(default="unknown", max_length=128)
    requested_at: datetime = Field(default_factory=utcnow)


MESSAGES: tuple[type[BaseModel], ...] = (ReturnEvent, RejectedEvent, SyncCommand)
