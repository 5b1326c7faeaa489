"""Pure mapping of a TikTok webhook (already parsed JSON) onto the shared contracts.

A webhook is one of:
- a return event (legacy `type` 2 or 202309 `type` 12) -> `Accepted(ReturnEvent)`;
- a return event this product does not map (unknown status, replacement) -> `Rejected`, which the
  edge publishes to the rejected topic so an operator can see it (never guessed at, never dropped);
- any other notification type (orders, products, authorization) -> `Ignored`.
A body of the wrong shape, or with an impossible value (`contracts.limits`: a time past int64,
an id with control characters...), raises `WebhookShapeError` naming the offending fields;
`shape_rejection` turns it into the `Rejected` the edge publishes before answering 422.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from contracts.limits import Code, Id, Int64, UnixTime
from contracts.messages import EventSource, RejectionReason, ReturnDetails, ReturnEvent
from contracts.statuses import (
    LEGACY_REVERSE_EVENT_TYPES,
    LEGACY_REVERSE_TYPE_CODES,
    LEGACY_STATUS_CODES,
    V202309_RETURN_TYPES,
    V202309_STATUS_NAMES,
    ReverseType,
)
from ingestor.rejections import Rejected, valid_id

LEGACY_RETURN_TYPE = 2
V202309_RETURN_TYPE = 12
RETURN_WEBHOOK_TYPES = frozenset({LEGACY_RETURN_TYPE, V202309_RETURN_TYPE})

LEGACY_REVERSE_USERS: dict[int, str] = {1: "buyer", 2: "seller", 3: "operator", 4: "system"}
WEBHOOK_SOURCES = {LEGACY_RETURN_TYPE: EventSource.WEBHOOK_LEGACY,
                   V202309_RETURN_TYPE: EventSource.WEBHOOK_202309}


class _Shape(BaseModel):
    # TikTok adds fields over time: unknown ones are allowed and ignored. Identifiers: TikTok
    # sends them as strings; numbers are accepted and kept as their digits.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)


class _Envelope(_Shape):
    type: Int64


class LegacyReturnData(_Shape):
    order_id: Id
    reverse_order_id: Id
    reverse_order_status: Int64
    reverse_event_type: Code | None = None
    reverse_type: Int64 | None = None  # not documented in the webhook; used when present
    reverse_user: Int64 | None = None
    update_time: UnixTime


class LegacyReturnWebhook(_Shape):
    type: Literal[2]
    shop_id: Id
    timestamp: UnixTime | None = None
    data: LegacyReturnData


class V202309ReturnData(_Shape):
    order_id: Id
    return_id: Id
    return_status: Code
    return_type: Code | None = None
    return_role: Code | None = None
    create_time: UnixTime | None = None
    update_time: UnixTime


class V202309ReturnWebhook(_Shape):
    type: Literal[12]
    tts_notification_id: Id | None = None
    shop_id: Id
    timestamp: UnixTime | None = None
    data: V202309ReturnData


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path, e.g. "data.update_time"
    message: str


class WebhookShapeError(ValueError):
    """The body is JSON but not a webhook of the expected shape."""

    def __init__(self, errors: tuple[FieldError, ...]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(e.field for e in self.errors)


@dataclass(frozen=True)
class Accepted:
    event: ReturnEvent


@dataclass(frozen=True)
class Ignored:
    webhook_type: int


WebhookOutcome = Accepted | Ignored | Rejected


def _shape_error(exc: ValidationError) -> WebhookShapeError:
    return WebhookShapeError(
        tuple(
            FieldError(".".join(str(part) for part in err["loc"]) or "body", err["msg"])
            for err in exc.errors(include_url=False)
        )
    )


def parse_webhook(payload: Any, *, observed_at: datetime) -> WebhookOutcome:
    """Map a parsed webhook body; raises `WebhookShapeError` when its shape is wrong."""
    if not isinstance(payload, dict):
        raise WebhookShapeError((FieldError("body", "must be a JSON object"),))
    try:
        envelope = _Envelope.model_validate(payload)
        if envelope.type == LEGACY_RETURN_TYPE:
            return _map_legacy(LegacyReturnWebhook.model_validate(payload), observed_at)
        if envelope.type == V202309_RETURN_TYPE:
            return _map_202309(V202309ReturnWebhook.model_validate(payload), observed_at)
    except ValidationError as exc:
        raise _shape_error(exc) from exc
    return Ignored(envelope.type)


def _legacy_reverse_type(data: LegacyReturnData) -> tuple[ReverseType | None, str | None]:
    """(reverse type or None when the webhook does not say, detail when it is unsupported)."""
    if data.reverse_event_type is not None:
        found = LEGACY_REVERSE_EVENT_TYPES.get(data.reverse_event_type)
        if found is None:
            return None, f"reverse_event_type {data.reverse_event_type!r} is not a supported type"
        return found, None
    if data.reverse_type is not None:
        by_code = LEGACY_REVERSE_TYPE_CODES.get(data.reverse_type)
        if by_code is None:
            return None, f"reverse_type {data.reverse_type} is not a supported type"
        return by_code, None
    return None, None


def _map_legacy(hook: LegacyReturnWebhook, observed_at: datetime) -> WebhookOutcome:
    data = hook.data
    source = EventSource.WEBHOOK_LEGACY
    reverse_type, unsupported = _legacy_reverse_type(data)
    if unsupported is not None:
        return Rejected(reason=RejectionReason.UNSUPPORTED_TYPE, detail=unsupported,
                        source=source, shop_id=hook.shop_id, return_id=data.reverse_order_id)
    status = LEGACY_STATUS_CODES.get(data.reverse_order_status)
    if status is None:
        return Rejected(
            reason=RejectionReason.UNKNOWN_STATUS,
            detail=f"reverse_order_status {data.reverse_order_status} is not a known status code",
            source=source, shop_id=hook.shop_id, return_id=data.reverse_order_id,
        )
    actor = None
    if data.reverse_user is not None:
        actor = LEGACY_REVERSE_USERS.get(data.reverse_user, f"reverse_user:{data.reverse_user}")
    return Accepted(
        ReturnEvent(
            shop_id=hook.shop_id,
            return_id=data.reverse_order_id,
            order_id=data.order_id,
            status=status,
            update_time=data.update_time,
            reverse_type=reverse_type,
            source=source,
            actor=actor,
            observed_at=observed_at,
        )
    )


def _map_202309(hook: V202309ReturnWebhook, observed_at: datetime) -> WebhookOutcome:
    data = hook.data
    source = EventSource.WEBHOOK_202309
    reverse_type: ReverseType | None = None
    if data.return_type is not None:
        reverse_type = V202309_RETURN_TYPES.get(data.return_type)
        if reverse_type is None:
            return Rejected(
                reason=RejectionReason.UNSUPPORTED_TYPE,
                detail=f"return_type {data.return_type!r} is not a supported type",
                source=source, shop_id=hook.shop_id, return_id=data.return_id,
            )
    status = V202309_STATUS_NAMES.get(data.return_status)
    if status is None:
        return Rejected(
            reason=RejectionReason.UNKNOWN_STATUS,
            detail=f"return_status {data.return_status!r} is not a known status",
            source=source, shop_id=hook.shop_id, return_id=data.return_id,
        )
    return Accepted(
        ReturnEvent(
            shop_id=hook.shop_id,
            return_id=data.return_id,
            order_id=data.order_id,
            status=status,
            update_time=data.update_time,
            reverse_type=reverse_type,
            details=ReturnDetails(request_time=data.create_time),
            source=source,
            notification_id=hook.tts_notification_id,
            actor=data.return_role.lower() if data.return_role else None,
            observed_at=observed_at,
        )
    )


def shape_rejection(payload: Any, error: WebhookShapeError) -> Rejected:
    """A webhook refused for its shape or values (`invalid_event`), with the shop and return
    it names when those are readable ids."""
    body: dict[str, Any] = payload if isinstance(payload, dict) else {}
    data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
    webhook_type = body.get("type")
    return Rejected(
        reason=RejectionReason.INVALID_EVENT,
        detail=f"invalid webhook: {error}",
        source=WEBHOOK_SOURCES.get(webhook_type) if isinstance(webhook_type, int) else None,
        shop_id=valid_id(body.get("shop_id")),
        return_id=valid_id(data.get("return_id", data.get("reverse_order_id"))),
    )


__all__ = [
    "RETURN_WEBHOOK_TYPES",
    "Accepted",
    "FieldError",
    "Ignored",
    "Rejected",
    "WebhookOutcome",
    "WebhookShapeError",
    "parse_webhook",
    "shape_rejection",
]
