"""Turning one consumed batch into new return states and rejections: pure, no I/O.

The consumer hands over the batch's deliveries and the stored state of every return they touch;
this module decodes them, skips redeliveries, folds each return's events in offset order through
`domain.apply_event`, and says what to store and what to reject.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field

from pydantic import ValidationError

from contracts.messages import RejectedEvent, RejectionReason, ReturnEvent
from contracts.read_model import Outcome, ReturnState
from contracts.statuses import ReturnStatus
from state_machine.domain import apply_event


@dataclass(frozen=True)
class Delivery:
    """One record as consumed from Kafka."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True)
class Stored:
    """A return as stored, with the position of the last delivery folded into it."""

    state: ReturnState
    partition: int
    offset: int
    version: int

    def has_applied(self, delivery: Delivery) -> bool:
        return delivery.partition == self.partition and delivery.offset <= self.offset


@dataclass(frozen=True)
class Change:
    key: str
    state: ReturnState
    partition: int
    offset: int
    expected_version: int | None  # None: the return is new


@dataclass
class BatchPlan:
    changes: list[Change] = field(default_factory=list)
    rejections: list[RejectedEvent] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=lambda: defaultdict(int))
    redelivered: int = 0


def _raw_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


def _rejected(
    delivery: Delivery,
    reason: RejectionReason,
    detail: str,
    event: ReturnEvent | None = None,
    shop_id: str | None = None,
    return_id: str | None = None,
) -> RejectedEvent:
    return RejectedEvent(
        rejection_id=f"{delivery.topic}:{delivery.partition}:{delivery.offset}",
        reason=reason,
        detail=detail,
        stage="state_machine",
        shop_id=event.shop_id if event else shop_id,
        return_id=event.return_id if event else return_id,
        source_topic=delivery.topic,
        source_partition=delivery.partition,
        source_offset=delivery.offset,
        event=event,
        raw=None if event else _raw_text(delivery.value),
    )


def decode(delivery: Delivery) -> ReturnEvent | RejectedEvent:
    """A delivery's event, or the reason it is not one."""
    if delivery.value is None:
        return _rejected(delivery, RejectionReason.UNDECODABLE, "empty message")
    try:
        payload = json.loads(delivery.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _rejected(delivery, RejectionReason.UNDECODABLE, f"not JSON: {exc}")
    try:
        return ReturnEvent.model_validate(payload)
    except ValidationError as exc:
        shop_id = return_id = None
        if isinstance(payload, dict):
            shop_id, return_id = payload.get("shop_id"), payload.get("return_id")
            status = payload.get("status")
            if isinstance(status, str) and status not in ReturnStatus.__members__:
                return _rejected(
                    delivery, RejectionReason.UNKNOWN_STATUS,
                    f"unknown status {status!r}; valid: {', '.join(ReturnStatus)}",
                    shop_id=_text(shop_id), return_id=_text(return_id),
                )
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        return _rejected(
            delivery, RejectionReason.INVALID_EVENT, errors,
            shop_id=_text(shop_id), return_id=_text(return_id),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:128]


Decoded = list[tuple[Delivery, ReturnEvent | RejectedEvent]]


def decode_all(deliveries: list[Delivery]) -> Decoded:
    return [(delivery, decode(delivery)) for delivery in deliveries]


def touched_keys(decoded: Decoded) -> set[str]:
    return {item.key for _, item in decoded if isinstance(item, ReturnEvent)}


def plan(decoded: Decoded, stored: dict[str, Stored]) -> BatchPlan:
    """What the batch does to the read model. `stored` holds every return the batch touches
    that already exists. Deliveries at or before a return's stored offset are redeliveries of
    what is already applied (a crash before the commit) and change nothing."""
    result = BatchPlan()
    per_return: dict[str, list[tuple[Delivery, ReturnEvent]]] = defaultdict(list)
    for delivery, item in decoded:
        if isinstance(item, RejectedEvent):
            result.rejections.append(item)
            result.outcomes[Outcome.REJECTED] += 1
        else:
            per_return[item.key].append((delivery, item))

    for key, items in per_return.items():
        before = stored.get(key)
        state = before.state if before else None
        last: Delivery | None = None
        for delivery, event in sorted(items, key=lambda item: item[0].offset):
            if before and before.has_applied(delivery):
                result.redelivered += 1
                continue
            decision = apply_event(state, event)
            result.outcomes[decision.outcome] += 1
            if decision.rejection:
                reason, why = decision.rejection
                result.rejections.append(_rejected(delivery, reason, why, event))
            state = decision.state
            last = delivery
        if last is not None and state is not None:
            result.changes.append(
                Change(key, state, last.partition, last.offset,
                       before.version if before else None)
            )
    return result
