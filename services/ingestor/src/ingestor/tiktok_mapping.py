"""Map TikTok Shop return records (sync responses of both API generations) to `ReturnEvent`s.

Pure functions. A record that cannot be mapped is not guessed at and not dropped: the result is a
`Rejected` value (never an exception) that the caller publishes to the rejected topic.

Choices where TikTok is silent (see DOMAIN.md):
- 202309 `return_line_items[]` are one unit each; identical SKUs are folded into one `ReturnItem`
  whose quantity is the number of lines (a `quantity` field, if present, is honoured).
- legacy `reason_text` is the first non-empty `reason_text` of `reverse_record_list[]` in time
  order (the buyer's application).
- an empty `refund_total` means "amount not known" (refund None); a malformed one rejects the
  record (`invalid_event`) rather than losing or inventing money.
- an impossible value (`contracts.limits`: a time before 2016 or past tomorrow, an amount that
  is not a finite decimal, an id with control characters...) rejects the record
  (`invalid_event`), naming TikTok's field where the contract's name differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from contracts.deadlines import Deadline, SellerAction
from contracts.limits import Amount, Count, UnixTime
from contracts.messages import (
    EventSource,
    Money,
    RejectionReason,
    ReturnDetails,
    ReturnEvent,
    ReturnItem,
)
from contracts.statuses import (
    LEGACY_REVERSE_TYPE_CODES,
    LEGACY_STATUS_CODES,
    V202309_RETURN_TYPES,
    V202309_STATUS_NAMES,
    ReverseType,
)
from ingestor.rejections import Rejected

LEGACY_CANCEL_REVERSE_TYPE = 1  # an order cancellation, not a return (DOMAIN.md, Reverse types)
SHOWN_CHARS = 64  # of a refused value, in a rejection's detail

T = TypeVar("T")
_TIME = TypeAdapter[int](UnixTime)
_COUNT = TypeAdapter[int](Count)
_AMOUNT = TypeAdapter[Decimal](Amount)
_DEADLINE = TypeAdapter[int](Deadline)

MappingResult = ReturnEvent | Rejected


class _Invalid(Exception):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _within(adapter: TypeAdapter[T], value: Any, where: str) -> T:
    """`value` if `contracts.limits` allows it, else the record is rejected naming `where`."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        why = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        raise _Invalid(RejectionReason.INVALID_EVENT, f"{where} {_shown(value)}: {why}") from None


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _req_str(record: Mapping[str, Any], key: str) -> str:
    value = _opt_str(record.get(key))
    if value is None:
        raise _Invalid(RejectionReason.INVALID_EVENT, f"missing {key}")
    return value


def _opt_int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Invalid(RejectionReason.INVALID_EVENT, f"{key} is not an integer: {_shown(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            return int(value.strip())
        except ValueError:  # digits int() refuses: "²", or more than Python converts
            pass
    raise _Invalid(RejectionReason.INVALID_EVENT, f"{key} is not an integer: {_shown(value)}")


def _opt_time(record: Mapping[str, Any], key: str) -> int | None:
    value = _opt_int(record, key)
    return None if value is None else _within(_TIME, value, key)


def _req_time(record: Mapping[str, Any], key: str) -> int:
    value = _opt_time(record, key)
    if value is None:
        raise _Invalid(RejectionReason.INVALID_EVENT, f"missing {key}")
    return value


def _opt_count(record: Mapping[str, Any], key: str) -> int | None:
    value = _opt_int(record, key)
    return None if value is None else _within(_COUNT, value, key)


def _money(amount: Any, currency: Any, where: str) -> Money | None:
    text = _opt_str(amount)
    if text is None:
        return None
    if isinstance(amount, float):  # a float has already lost precision: refuse to guess
        raise _Invalid(RejectionReason.INVALID_EVENT, f"{where} is a float, not a string")
    value = _within(_AMOUNT, text, where)
    cur = _opt_str(currency)
    if cur is None:
        raise _Invalid(RejectionReason.INVALID_EVENT, f"{where} has no currency")
    return Money(amount=value, currency=cur)


def _list_of_dicts(record: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise _Invalid(RejectionReason.INVALID_EVENT, f"{key} is not a list of objects")
    return value


def _first_image(value: Any) -> str | None:
    if isinstance(value, list):
        return _opt_str(value[0]) if value else None
    if isinstance(value, Mapping):
        return _opt_str(value.get("url"))
    return _opt_str(value)


def _rejected(
    exc: _Invalid, record: Mapping[str, Any], shop_id: str, id_key: str, source: EventSource
) -> Rejected:
    return Rejected(
        reason=exc.reason,
        detail=exc.detail,
        raw=dict(record),
        shop_id=shop_id,
        return_id=_opt_str(record.get(id_key)),
        source=source,
    )


def _validation_detail(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


def _guarded(
    mapper: Callable[[Mapping[str, Any], str], ReturnEvent],
    record: Any,
    shop_id: str,
    id_key: str,
    source: EventSource,
) -> MappingResult:
    if not isinstance(record, Mapping):
        return Rejected(
            reason=RejectionReason.UNDECODABLE,
            detail=f"record is a {type(record).__name__}, not an object",
            raw={"record": record},
            shop_id=shop_id,
            source=source,
        )
    try:
        return mapper(record, shop_id)
    except _Invalid as exc:
        return _rejected(exc, record, shop_id, id_key, source)
    except ValidationError as exc:
        invalid = _Invalid(RejectionReason.INVALID_EVENT, _validation_detail(exc))
        return _rejected(invalid, record, shop_id, id_key, source)


# ---------------------------------------------------------------------------------------- legacy


def _legacy_items(record: Mapping[str, Any]) -> tuple[ReturnItem, ...] | None:
    if record.get("return_item_list") is None:
        return None
    return tuple(
        ReturnItem(
            sku_id=_opt_str(item.get("sku_id")),
            seller_sku=_opt_str(item.get("seller_sku")),
            product_name=_opt_str(item.get("return_product_name")),
            sku_name=_opt_str(item.get("sku_name")),
            quantity=_opt_count(item, "return_quantity"),
            image_url=_first_image(item.get("product_images")),
        )
        for item in _list_of_dicts(record, "return_item_list")
    )


def _legacy_reason_text(record: Mapping[str, Any]) -> str | None:
    records = _list_of_dicts(record, "reverse_record_list")
    in_time_order = sorted(records, key=lambda r: _opt_int(r, "update_time") or 0)
    for entry in in_time_order:
        text = _opt_str(entry.get("reason_text"))
        if text is not None:
            return text
    return None


def _map_legacy(record: Mapping[str, Any], shop_id: str) -> ReturnEvent:
    return_id = _req_str(record, "reverse_order_id")
    type_code = _opt_int(record, "reverse_type")
    reverse_type: ReverseType | None = None
    if type_code is not None:
        if type_code not in LEGACY_REVERSE_TYPE_CODES:
            cancel = type_code == LEGACY_CANCEL_REVERSE_TYPE
            what = " (CANCEL, an order cancellation)" if cancel else ""
            detail = f"legacy reverse_type {type_code}{what} is not a return"
            raise _Invalid(RejectionReason.UNSUPPORTED_TYPE, detail)
        reverse_type = LEGACY_REVERSE_TYPE_CODES[type_code]
    status_code = _opt_int(record, "reverse_status_value")
    if status_code is None or status_code not in LEGACY_STATUS_CODES:
        raise _Invalid(
            RejectionReason.UNKNOWN_STATUS, f"legacy reverse_status_value {status_code!r} unknown"
        )
    details = ReturnDetails(
        refund=_money(record.get("refund_total"), record.get("currency"), "refund_total"),
        reason=_opt_str(record.get("return_reason")),
        reason_text=_legacy_reason_text(record),
        items=_legacy_items(record),
        tracking_number=_opt_str(record.get("return_tracking_id")),
        request_time=_opt_time(record, "reverse_request_time"),
    )
    return ReturnEvent(
        shop_id=shop_id,
        return_id=return_id,
        order_id=_req_str(record, "order_id"),
        status=LEGACY_STATUS_CODES[status_code],
        update_time=_req_time(record, "reverse_update_time"),
        reverse_type=reverse_type,
        details=details,
        source=EventSource.SYNC_LEGACY,
    )


def map_legacy_record(record: Mapping[str, Any] | Any, shop_id: str) -> MappingResult:
    """Map one `reverse_list[]` record of `POST /api/reverse/reverse_order/list`."""
    return _guarded(_map_legacy, record, shop_id, "reverse_order_id", EventSource.SYNC_LEGACY)


# ---------------------------------------------------------------------------------------- 202309


def _v202309_items(record: Mapping[str, Any]) -> tuple[ReturnItem, ...] | None:
    if record.get("return_line_items") is None:
        return None
    folded: dict[tuple[str | None, ...], int] = {}
    order: list[tuple[tuple[str | None, ...], str | None]] = []
    for line in _list_of_dicts(record, "return_line_items"):
        key = (
            _opt_str(line.get("sku_id")),
            _opt_str(line.get("seller_sku")),
            _opt_str(line.get("product_name")),
            _opt_str(line.get("sku_name")),
        )
        quantity = _opt_count(line, "quantity")
        if key not in folded:
            folded[key] = 0
            order.append((key, _first_image(line.get("product_image"))))
        folded[key] += 1 if quantity is None else quantity
    return tuple(
        ReturnItem(
            sku_id=key[0],
            seller_sku=key[1],
            product_name=key[2],
            sku_name=key[3],
            quantity=folded[key],
            image_url=image,
        )
        for key, image in order
    )


def _v202309_refund(record: Mapping[str, Any]) -> Money | None:
    amount = record.get("refund_amount")
    if amount is None:
        return None
    if not isinstance(amount, Mapping):
        raise _Invalid(RejectionReason.INVALID_EVENT, "refund_amount is not an object")
    return _money(amount.get("refund_total"), amount.get("currency"), "refund_amount.refund_total")


def _v202309_next_actions(record: Mapping[str, Any]) -> tuple[SellerAction, ...]:
    """`seller_next_action_response`: what TikTok waits for from the seller, by when. Absent
    or empty means nothing (), which clears a deadline the return had."""
    actions = []
    for entry in _list_of_dicts(record, "seller_next_action_response"):
        action = _opt_str(entry.get("action"))
        deadline = _opt_int(entry, "deadline")
        if action is None or deadline is None:
            raise _Invalid(RejectionReason.INVALID_EVENT,
                           "seller_next_action_response entry without action or deadline")
        where = "seller_next_action_response.deadline"
        actions.append(SellerAction(action=action, deadline=_within(_DEADLINE, deadline, where)))
    return tuple(actions)


def _map_202309(record: Mapping[str, Any], shop_id: str) -> ReturnEvent:
    return_id = _req_str(record, "return_id")
    type_name = _opt_str(record.get("return_type"))
    reverse_type: ReverseType | None = None
    if type_name is not None:
        if type_name not in V202309_RETURN_TYPES:
            raise _Invalid(
                RejectionReason.UNSUPPORTED_TYPE, f"202309 return_type {type_name} is not supported"
            )
        reverse_type = V202309_RETURN_TYPES[type_name]
    status_name = _opt_str(record.get("return_status"))
    if status_name is None or status_name not in V202309_STATUS_NAMES:
        raise _Invalid(
            RejectionReason.UNKNOWN_STATUS, f"202309 return_status {status_name!r} unknown"
        )
    details = ReturnDetails(
        refund=_v202309_refund(record),
        reason=_opt_str(record.get("return_reason")),
        reason_text=_opt_str(record.get("return_reason_text")),
        items=_v202309_items(record),
        tracking_number=_opt_str(record.get("return_tracking_number")),
        request_time=_opt_time(record, "create_time"),
        next_actions=_v202309_next_actions(record),
    )
    return ReturnEvent(
        shop_id=shop_id,
        return_id=return_id,
        order_id=_req_str(record, "order_id"),
        status=V202309_STATUS_NAMES[status_name],
        update_time=_req_time(record, "update_time"),
        reverse_type=reverse_type,
        details=details,
        source=EventSource.SYNC_202309,
        actor=_opt_str(record.get("role") or record.get("return_role")),
    )


def map_202309_record(record: Mapping[str, Any] | Any, shop_id: str) -> MappingResult:
    """Map one `return_orders[]` record of `POST /return_refund/202309/returns/search`."""
    return _guarded(_map_202309, record, shop_id, "return_id", EventSource.SYNC_202309)


def record_update_time(record: Mapping[str, Any]) -> int | None:
    """The update time of a raw record of either generation, if it has a usable one."""
    for key in ("reverse_update_time", "update_time"):
        try:
            value = _opt_time(record, key)
        except _Invalid:
            continue
        if value is not None:
            return value
    return None


def map_records(
    records: Sequence[Mapping[str, Any]], shop_id: str, api_version: str
) -> tuple[MappingResult, ...]:
    mapper = map_legacy_record if api_version == "legacy" else map_202309_record
    return tuple(mapper(r, shop_id) for r in records)
