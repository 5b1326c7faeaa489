"""The read model, written by the state machine and read by the query API:

- a returns collection: one small document per return, its current state (`ReturnState`);
- its history collection (`<returns>_events`): one document per distinct event of a return
  (`EventRecord`), with the outcome the fold gave it, so a return's timeline has no size limit;
- its counts collection (`<returns>_counts`): per shop and events-topic partition, how many
  returns are in each status (`CountsDocument`), so the status tabs cost O(statuses);
- its known-keys collection (`<returns>_keys`): per shop, `KEY_SHARDS` sets of the keys of the
  returns it has written anything of, which tell the state machine a new return without a
  read (only the state machine reads them: state_machine.known_keys).

The four switch together (replay): `meta.active_read_model` names the returns collection and
the others are named after it. The state machine owns the rules that produce them
(state_machine.domain); this module only says what they look like and which indexes serve the
query API's queries.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from contracts.deadlines import DEADLINE_INDEXES
from contracts.messages import EventSource, RejectionReason, ReturnDetails, ReturnEvent
from contracts.statuses import ReturnStatus, ReverseType

RETURNS_COLLECTION_PREFIX = "returns"
DEFAULT_RETURNS_COLLECTION = "returns"
META_COLLECTION = "meta"
ACTIVE_READ_MODEL_ID = "active_read_model"  # meta document naming the collection the API reads
REJECTIONS_COLLECTION = "rejections"
SYNC_JOBS_COLLECTION = "sync_jobs"
SYNC_CHECKPOINTS_COLLECTION = "sync_checkpoints"

# The layout of the read model. 2: history and counts in their own collections. 3: each return
# keeps its `Milestones`, which the insights read instead of its history. A stored read model
# of another version is rebuilt by replay (`make replay`), never read half-understood. A counts
# document's `days` is now stored as one text (`days_text`); one of nested fields, as 3 was
# first written, reads the same and is rewritten as text by its next update: still version 3.
# 4: the known-keys collection, which must hold every key written since the read model began.
READ_MODEL_SCHEMA_VERSION = 4

# How many key sets each shop's known keys are split into (by the return key alone): changing
# it changes which set a key belongs to, so it needs a new schema version. Equal to the events
# topic's partitions, so that each consumer writes only the sets of its own partitions.
KEY_SHARDS = 12


def events_collection(returns_collection: str) -> str:
    """The history collection that belongs to a returns collection."""
    return f"{returns_collection}_events"


def counts_collection(returns_collection: str) -> str:
    """The status-counts collection that belongs to a returns collection."""
    return f"{returns_collection}_counts"


def keys_collection(returns_collection: str) -> str:
    """The known-keys collection that belongs to a returns collection."""
    return f"{returns_collection}_keys"


class Outcome(StrEnum):
    APPLIED = "applied"
    INFERRED = "inferred"
    STALE = "stale"  # not produced since events fold in order (README, "Order never matters")
    REJECTED = "rejected"
    DETAILS_UPDATED = "details_updated"
    DUPLICATE = "duplicate"  # never a history entry: counted on the return instead


class HistoryEntry(BaseModel):
    """One line of a return's timeline, as the API shows it."""

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
    deliveries: int = 1


class Milestones(BaseModel):
    """When a return's history reached what the insights measure, in the fold's order: the
    update_time of its first applied event (`opened_at`), of the applied event that brought its
    first status after AFTERSALE_APPLYING (`decided_at`; that status is `decided_as`: an
    inferred status counts, at the time of the event that implied it, and when the first event
    is already past AFTERSALE_APPLYING, it stands for the decision), and of the one that brought
    it to COMPLETE (`refunded_at`). The fold moves them on with each applied event, so, like the
    rest of a return's state, they are a function of the set of its events."""

    model_config = ConfigDict(frozen=True)

    opened_at: int
    decided_at: int | None = None
    decided_as: ReturnStatus | None = None
    refunded_at: int | None = None

    @classmethod
    def opened(cls, status: ReturnStatus, at: int) -> Milestones:
        """Of a return whose first applied event brought `status` at `at`."""
        return cls(opened_at=at).after((status,), at)

    def after(self, path: Sequence[ReturnStatus], at: int) -> Milestones:
        """Once an applied event brought the statuses of `path` (inferred ones first) at `at`."""
        update: dict[str, object] = {}
        if self.decided_as is None:
            decided = next((s for s in path if s is not ReturnStatus.AFTERSALE_APPLYING), None)
            if decided is not None:
                update |= {"decided_at": at, "decided_as": decided}
        if self.refunded_at is None and ReturnStatus.COMPLETE in path:
            update["refunded_at"] = at
        return self.model_copy(update=update) if update else self


class ReturnState(BaseModel):
    """The current state of one return (its history is in the history collection)."""

    model_config = ConfigDict(frozen=True)

    shop_id: str
    return_id: str
    order_id: str
    status: ReturnStatus
    reverse_type: ReverseType | None = None  # None: no event said; a stored return omits it
    update_time: int
    details: ReturnDetails
    details_as_of: dict[str, int] = {}  # per detail: update_time of the event it came from
    duplicate_count: int = 0
    anomaly: bool = False
    first_seen_at: datetime
    last_seen_at: datetime
    milestones: Milestones | None = None  # None only in a state the fold did not make


class EventRecord(BaseModel):
    """One distinct event of a return in the history collection (`_id` = `event.event_id`):
    the event merged over all its deliveries, how often it was delivered, the position of its
    last counted delivery, and what the fold of its return's events made of it."""

    model_config = ConfigDict(frozen=True)

    return_key: str
    shop_id: str
    update_time: int  # the fold's order: (update_time, rank); top level for the index
    rank: int
    event: ReturnEvent
    deliveries: int
    last_observed_at: datetime
    partition: int
    offset: int
    outcome: Outcome
    inferred: tuple[ReturnStatus, ...] = ()  # statuses missed before this one (rule 6)
    reason: RejectionReason | None = None
    note: str | None = None
    # The reason of the latest rejection the event was given, kept when it is withdrawn, so
    # that a batch resumed after a crash can announce the withdrawal again.
    last_rejection: RejectionReason | None = None


DayHistogram = dict[str, dict[str, int]]  # day (its first second) -> status -> returns


def days_text(days: Mapping[str, Mapping[str, int]]) -> str:
    """How a counts document stores its per-day histogram: as one JSON text, without empty
    entries. The database never looks inside it, and FerretDB v1 stores a type schema beside
    every field and rewrites a whole document on each update. An update of a counts document
    of 35 days (10 statuses each) took 7.0 ms with nested fields and 2.8 ms with one text; of
    365 days, 38 ms and 7.3 ms (`python -m bench.counts_document`)."""
    kept = {day: {s: n for s, n in sorted(by_status.items()) if n}
            for day, by_status in sorted(days.items())}
    return json.dumps({day: by_status for day, by_status in kept.items() if by_status},
                      separators=(",", ":"))


class CountsDocument(BaseModel):
    """How many returns of one shop are in each status, counting the events of one partition
    up to `offset` (`_id` = "shop_id:partition"), and per day of their `update_time`
    (`days`: day -> status -> returns), which tells a list which time buckets to read. `days`
    is stored as `days_text` (a nested document, as written before, reads the same)."""

    model_config = ConfigDict(frozen=True)

    shop_id: str
    partition: int
    offset: int
    counts: dict[str, int]
    days: DayHistogram = {}

    @field_validator("days", mode="before")
    @classmethod
    def _stored_days(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str | bytes) else value


# A list of returns, newest update first, is read bucket by bucket: FerretDB v1 serves only
# top-level equality from an index and sorts in memory, so a page reads the returns of the few
# newest time buckets of its tab (by equality on these fields) instead of the whole tab.
DAY_S = 86_400
HOUR_S = 3_600
PAGE_FIELDS = ("page_day", "page_status_day", "page_hour", "page_status_hour")


def bucket_start(update_time: int, seconds: int) -> int:
    """The first second of the day or hour (`seconds`) that holds this time."""
    return update_time - update_time % seconds


def page_bucket(shop_id: str, status: str | None, seconds: int, start: int) -> str:
    """The bucket key of a shop's returns (of one status, or of all) updated in the day or
    hour (`seconds`) that begins at `start`."""
    kind = "d" if seconds == DAY_S else "h"
    return "|".join((shop_id, status or "*", kind, str(start)))


def page_fields(shop_id: str, status: str, update_time: int) -> dict[str, str]:
    """The bucket keys a stored return carries (top level, so FerretDB pushes them down)."""
    day, hour = bucket_start(update_time, DAY_S), bucket_start(update_time, HOUR_S)
    return {
        "page_day": page_bucket(shop_id, None, DAY_S, day),
        "page_status_day": page_bucket(shop_id, status, DAY_S, day),
        "page_hour": page_bucket(shop_id, None, HOUR_S, hour),
        "page_status_hour": page_bucket(shop_id, status, HOUR_S, hour),
    }


def page_field(status: str | None, seconds: int) -> str:
    """The field that holds a bucket key of this kind."""
    return ("page_status_" if status else "page_") + ("day" if seconds == DAY_S else "hour")


# (keys, name) of every index the query API's queries need on a returns collection.
# Newest update first, ties broken by _id so cursor pagination is total.
RETURNS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("update_time", -1), ("_id", -1)], "shop_updated"),
    ([("shop_id", 1), ("status", 1), ("update_time", -1), ("_id", -1)], "shop_status_updated"),
    ([("shop_id", 1), ("reverse_type", 1), ("update_time", -1), ("_id", -1)], "shop_type_updated"),
    ([("shop_id", 1), ("order_id", 1)], "shop_order"),
    ([("shop_id", 1), ("anomaly", 1), ("update_time", -1), ("_id", -1)], "shop_anomaly_updated"),
    ([("update_time", -1), ("_id", -1)], "updated"),
    *(([(name, 1), ("update_time", -1), ("_id", -1)], name) for name in PAGE_FIELDS),
    *DEADLINE_INDEXES,  # the returns waiting on the seller, soonest deadline first
    # Insights: a shop's returns requested in a time range, or with no known request time.
    ([("shop_id", 1), ("details.request_time", 1)], "shop_requested"),
)

# The history of one return in fold order (the detail route and the state machine's refold).
EVENTS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("return_key", 1), ("update_time", 1), ("rank", 1)], "return_order"),
    # Insights: a shop's rejected events (the returns' own documents serve everything else).
    ([("shop_id", 1), ("outcome", 1)], "shop_outcome"),
)

COUNTS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("partition", 1)], "shop_partition"),
)

REJECTIONS_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), ("rejected_at", -1), ("_id", -1)], "shop_rejected"),
    ([("shop_id", 1), ("reason", 1), ("rejected_at", -1), ("_id", -1)], "shop_reason_rejected"),
    ([("reason", 1), ("rejected_at", -1), ("_id", -1)], "reason_rejected"),
    ([("rejected_at", -1), ("_id", -1)], "rejected"),
)


# `sync_jobs`: one document per sync command (`_id` = command id), written by the query API
# (queued, before it publishes the command) and by the ingestor (everything after), both
# through `runtime.sync_jobs`.
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
