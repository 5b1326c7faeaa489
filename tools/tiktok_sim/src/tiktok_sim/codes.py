"""TikTok's status and reverse-type codes of both API generations, as the simulator speaks them.

Typed in from DOMAIN.md ("Canonical statuses", "Reverse types"), never derived from the
`contracts` tables: the ingestor maps with those, the simulator renders with these, so a wrong
code on either side fails the tests instead of agreeing with itself
(tests/unit/test_tiktok_codes.py compares the two).

What TikTok has beyond these is deliberately absent, as in `contracts`: legacy `reverse_type` 1
(CANCEL, an order cancellation), 202309 REPLACEMENT and its REPLACEMENT_REQUEST_* statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from contracts.statuses import ReturnStatus, ReverseType

S = ReturnStatus
T = ReverseType

# Legacy `reverse_order_status` (webhook) / `reverse_status_value` (search).
LEGACY_CODE_OF_STATUS: Mapping[ReturnStatus, int] = {
    S.AFTERSALE_APPLYING: 1,
    S.AFTERSALE_REJECT_APPLICATION: 2,
    S.AFTERSALE_RETURNING: 3,
    S.AFTERSALE_BUYER_SHIPPED: 4,
    S.AFTERSALE_SELLER_REJECT_RECEIVE: 5,
    S.AFTERSALE_SUCCESS: 50,
    S.CANCEL_SUCCESS: 51,
    S.CLOSED: 99,
    S.COMPLETE: 100,
}

# 202309 `return_status`; CLOSED has no equivalent. The first name of a status is the one the
# simulator renders.
V202309_NAMES_OF_STATUS: Mapping[ReturnStatus, tuple[str, ...]] = {
    S.AFTERSALE_APPLYING: ("RETURN_OR_REFUND_REQUEST_PENDING", "AWAITING_BUYER_RESPONSE"),
    S.AFTERSALE_REJECT_APPLICATION: ("REFUND_OR_RETURN_REQUEST_REJECT",),
    S.AFTERSALE_RETURNING: ("AWAITING_BUYER_SHIP",),
    S.AFTERSALE_BUYER_SHIPPED: ("BUYER_SHIPPED_ITEM",),
    S.AFTERSALE_SELLER_REJECT_RECEIVE: ("REJECT_RECEIVE_PACKAGE",),
    S.AFTERSALE_SUCCESS: ("RETURN_OR_REFUND_REQUEST_SUCCESS",),
    S.CANCEL_SUCCESS: ("RETURN_OR_REFUND_REQUEST_CANCEL",),
    S.COMPLETE: ("RETURN_OR_REFUND_REQUEST_COMPLETE",),
}

# Legacy `reverse_type` (search records and filter).
LEGACY_TYPE_CODE_OF: Mapping[ReverseType, int] = {
    T.REFUND_ONLY: 2,
    T.RETURN_AND_REFUND: 3,
    T.REQUEST_CANCEL: 4,
}

# Legacy webhook `reverse_event_type`.
LEGACY_EVENT_TYPE_OF: Mapping[ReverseType, str] = {
    T.REFUND_ONLY: "ORDER_REFUND",
    T.RETURN_AND_REFUND: "ORDER_RETURN",
    T.REQUEST_CANCEL: "ORDER_REQUEST_CANCEL",
}

# 202309 `return_type`; cancellations are another API there.
V202309_TYPE_NAME_OF: Mapping[ReverseType, str] = {
    T.REFUND_ONLY: "REFUND",
    T.RETURN_AND_REFUND: "RETURN_AND_REFUND",
}

# The same tables read the other way, for the search filters the simulator accepts.
V202309_NAME_OF_STATUS: Mapping[ReturnStatus, str] = {
    status: names[0] for status, names in V202309_NAMES_OF_STATUS.items()
}
STATUS_OF_LEGACY_CODE: Mapping[int, ReturnStatus] = {
    code: status for status, code in LEGACY_CODE_OF_STATUS.items()
}
STATUS_OF_V202309_NAME: Mapping[str, ReturnStatus] = {
    name: status for status, names in V202309_NAMES_OF_STATUS.items() for name in names
}
TYPE_OF_LEGACY_CODE: Mapping[int, ReverseType] = {
    code: reverse_type for reverse_type, code in LEGACY_TYPE_CODE_OF.items()
}
TYPE_OF_V202309_NAME: Mapping[str, ReverseType] = {
    name: reverse_type for reverse_type, name in V202309_TYPE_NAME_OF.items()
}
