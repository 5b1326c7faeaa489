"""What the ingestor cannot map, as the rejected topic keeps it: never guessed at, never dropped.

A webhook or a sync record that is refused becomes a `Rejected` value (pure mapping code never
raises for bad input), and a sync command that cannot be decoded is refused as it came; the
edge turns them into a `RejectedEvent` here and publishes it to REJECTED_TOPIC, where the state
machine records it for `GET /api/v1/rejections`. Rejection ids are deterministic, so the same
input refused twice (a TikTok retry, a sync run again) is one rejection.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.limits import Id
from contracts.messages import EventSource, RejectedEvent, RejectionReason, raw_text
from contracts.topics import SYNC_COMMANDS_TOPIC

_ID = TypeAdapter[str](Id)


@dataclass(frozen=True, kw_only=True)
class Rejected:
    """Input that is not mapped, with the reason; `raw` is a sync record as received (a
    webhook's raw body is passed to `webhook_rejection` instead)."""

    reason: RejectionReason
    detail: str
    source: EventSource | None = None
    shop_id: str | None = None
    return_id: str | None = None
    raw: Any = field(default=None, repr=False)


def valid_id(value: Any) -> str | None:
    """`value` as an id if it is a valid one (`contracts.limits.Id`), else None: a rejection
    names the shop and return only when they are real ids (the shop id is its Kafka key)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        return _ID.validate_python(str(value))
    except ValidationError:
        return None


def _event(rejected: Rejected, rejection_id: str, raw: str, at: datetime) -> RejectedEvent:
    where = rejected.source.value if rejected.source is not None else None
    return RejectedEvent(
        rejection_id=rejection_id,
        reason=rejected.reason,
        detail=f"{where}: {rejected.detail}" if where else rejected.detail,
        stage="ingestor",
        shop_id=valid_id(rejected.shop_id),
        return_id=valid_id(rejected.return_id),
        raw=raw,
        rejected_at=at,
    )


def webhook_rejection(rejected: Rejected, raw_body: bytes, *, at: datetime) -> RejectedEvent:
    """A refused webhook with its body as received; the id depends on the body only."""
    digest = hashlib.sha256(raw_body).hexdigest()
    return _event(rejected, f"ingestor:{digest}", raw_text(raw_body), at)


def sync_rejection(rejected: Rejected, at: datetime) -> RejectedEvent:
    """A refused record of a sync response; the id depends on the shop and the record only:
    syncing the same record again gives the same rejection."""
    raw = json.dumps(rejected.raw, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(f"{rejected.shop_id}\n{raw}".encode()).hexdigest()
    return _event(rejected, f"ingestor-sync:{digest}", raw, at)


def undecodable_command(
    value: bytes | None, detail: str, partition: int | None, offset: int | None, at: datetime,
    *, topic: str = SYNC_COMMANDS_TOPIC, kind: str = "sync command",
) -> RejectedEvent:
    """A command (of `kind`, read from `topic`) that is not one, with its bytes and where it
    was read; the id depends on the kind and the bytes only."""
    body = value or b""
    return RejectedEvent(
        rejection_id=f"ingestor-{kind.replace(' ', '-')}:" + hashlib.sha256(body).hexdigest(),
        reason=RejectionReason.UNDECODABLE,
        detail=f"{kind}: {detail}",
        stage="ingestor",
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        raw=raw_text(body),
        rejected_at=at,
    )
