"""The read model: one document per return, written by the state machine, read by the query API.

The state machine owns the rules that produce it (state_machine.domain); this module only says
what a stored return looks like and which indexes serve the query API's queries.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.messages import EventSource, RejectionReason, ReturnDetails, SyncCommand
from contracts.statuses import ReturnStatus, ReverseType

RETURNS_COLLECTION_PREFIX = "returns"
DEFAULT_RETURNS_COLLECTION = "returns"
META_COLLECTION = "meta"
ACTIVE_READ_MODEL_ID = "active_read_model"  # meta document naming the collection the API reads
REJECTIONS_COLLECTION = "rejections"
SYNC_JOBS_COLLECTION = "sync_jobs"
SYNC_CHECKPOINTS_COLLECTION = "sync_checkpoints"


class Outcome(StrEnum):
    APPLIED = "applied"
    INFERRED = "inferred"
    STALE = "stale"
    REJECTED = "rejected"
    DETAILS_UPDATED = "details_updated"
    DUPLICATE = "duplicate"  # never a history entry: counted on the return instead


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str | None  # None for an inferred status, which no event reported
    status: ReturnStatus
    update_time: int
    outcome: Outcome
    source: EventSource | None = None
    notification_id: str | None = None
    actor: str | None = None
    observed_at: datetime | None = None
    details: ReturnDetails | None = None
    reason: RejectionReason | None = None
    note: str | None = None


class ReturnState(BaseModel):
    """The current state of one return and everything that happened to it."""

    model_config = ConfigDict(frozen=True)

    shop_id: str
    return_id: str
    order_id: str
    status: ReturnStatus
    reverse_type: ReverseType | None
    update_time: int
    details: ReturnDetails
    details_as_of: dict[str, int] = {}  # per detail: update_time of the event it came from
    history: tuple[HistoryEntry, ...]
    duplicate_count: int = 0
    anomaly: bool = False
    first_seen_at: datetime
    last_seen_at: datetime

    @property
    def known_event_ids(self) -> frozenset[str]:
        return frozenset(h.event_id for h in self.history if h.event_id is not None)




# (keys, name) of every index the query API's queries need on a returns collection.
# Newest update first, ties broken by _id so cursor pagination is total.
RETURNS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("update_time", -1), ("_id", -1)], "shop_updated"),
    ([("shop_id", 1), ("status", 1), ("update_time", -1), ("_id", -1)], "shop_status_updated"),
    ([("shop_id", 1), ("reverse_type", 1), ("update_time", -1), ("_id", -1)], "shop_type_updated"),
    ([("shop_id", 1), ("order_id", 1)], "shop_order"),
    ([("shop_id", 1), ("anomaly", 1), ("update_time", -1), ("_id", -1)], "shop_anomaly_updated"),
    ([("update_time", -1), ("_id", -1)], "updated"),
)

REJECTIONS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("rejected_at", -1), ("_id", -1)], "shop_rejected"),
    ([("shop_id", 1), ("reason", 1), ("rejected_at", -1), ("_id", -1)], "shop_reason_rejected"),
    ([("reason", 1), ("rejected_at", -1), ("_id", -1)], "reason_rejected"),
    ([("rejected_at", -1), ("_id", -1)], "rejected"),
)


# `sync_jobs`: one document per sync command (`_id` = command id), written by the query API
# (queued, before it publishes the command) and by the ingestor (everything after).
class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value})

SYNC_JOBS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("created_at", -1)], "shop_created"),
    ([("shop_id", 1), ("status", 1), ("created_at", -1)], "shop_status_created"),
)


def queued_sync_job(command: SyncCommand, created_at: datetime | None = None) -> dict[str, Any]:
    """The `sync_jobs` document of a command nobody has started yet."""
    return {
        "_id": str(command.command_id),
        "shop_id": command.shop_id,
        "status": JobStatus.QUEUED.value,
        "since": command.since,
        "until": command.until,
        "requested_by": command.requested_by,
        "pages": 0,
        "returns_seen": 0,
        "events_published": 0,
        "rejected": 0,
        "error": None,
        "attempts": 0,
        "created_at": created_at or command.requested_at,
        "started_at": None,
        "finished_at": None,
    }
