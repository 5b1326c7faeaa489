"""Canonical aftersale statuses and reverse types, with their TikTok codes in both API generations.

The product uses the names of TikTok's first-generation ("reverse") API; the 202309
("return_refund") names map onto them. Anything not in these tables is not guessed at.
"""

from __future__ import annotations

from enum import StrEnum


class ReturnStatus(StrEnum):
    AFTERSALE_APPLYING = "AFTERSALE_APPLYING"
    AFTERSALE_REJECT_APPLICATION = "AFTERSALE_REJECT_APPLICATION"
    AFTERSALE_RETURNING = "AFTERSALE_RETURNING"
    AFTERSALE_BUYER_SHIPPED = "AFTERSALE_BUYER_SHIPPED"
    AFTERSALE_SELLER_REJECT_RECEIVE = "AFTERSALE_SELLER_REJECT_RECEIVE"
    AFTERSALE_SUCCESS = "AFTERSALE_SUCCESS"
    CANCEL_SUCCESS = "CANCEL_SUCCESS"
    CLOSED = "CLOSED"
    COMPLETE = "COMPLETE"


class ReverseType(StrEnum):
    REFUND_ONLY = "REFUND_ONLY"
    RETURN_AND_REFUND = "RETURN_AND_REFUND"
    REQUEST_CANCEL = "REQUEST_CANCEL"


LEGACY_STATUS_CODES: dict[int, ReturnStatus] = {
    1: ReturnStatus.AFTERSALE_APPLYING,
    2: ReturnStatus.AFTERSALE_REJECT_APPLICATION,
    3: ReturnStatus.AFTERSALE_RETURNING,
    4: ReturnStatus.AFTERSALE_BUYER_SHIPPED,
    5: ReturnStatus.AFTERSALE_SELLER_REJECT_RECEIVE,
    50: ReturnStatus.AFTERSALE_SUCCESS,
    51: ReturnStatus.CANCEL_SUCCESS,
    99: ReturnStatus.CLOSED,
    100: ReturnStatus.COMPLETE,
}

V202309_STATUS_NAMES: dict[str, ReturnStatus] = {
    "RETURN_OR_REFUND_REQUEST_PENDING": ReturnStatus.AFTERSALE_APPLYING,
    "AWAITING_BUYER_RESPONSE": ReturnStatus.AFTERSALE_APPLYING,
    "REFUND_OR_RETURN_REQUEST_REJECT": ReturnStatus.AFTERSALE_REJECT_APPLICATION,
    "AWAITING_BUYER_SHIP": ReturnStatus.AFTERSALE_RETURNING,
    "BUYER_SHIPPED_ITEM": ReturnStatus.AFTERSALE_BUYER_SHIPPED,
    "REJECT_RECEIVE_PACKAGE": ReturnStatus.AFTERSALE_SELLER_REJECT_RECEIVE,
    "RETURN_OR_REFUND_REQUEST_SUCCESS": ReturnStatus.AFTERSALE_SUCCESS,
    "RETURN_OR_REFUND_REQUEST_CANCEL": ReturnStatus.CANCEL_SUCCESS,
    "RETURN_OR_REFUND_REQUEST_COMPLETE": ReturnStatus.COMPLETE,
}

# Legacy reverse_type 1 is an order cancellation (CANCEL), not a return: deliberately absent.
LEGACY_REVERSE_TYPE_CODES: dict[int, ReverseType] = {
    2: ReverseType.REFUND_ONLY,
    3: ReverseType.RETURN_AND_REFUND,
    4: ReverseType.REQUEST_CANCEL,
}

LEGACY_REVERSE_EVENT_TYPES: dict[str, ReverseType] = {
    "ORDER_REFUND": ReverseType.REFUND_ONLY,
    "ORDER_RETURN": ReverseType.RETURN_AND_REFUND,
    "ORDER_REQUEST_CANCEL": ReverseType.REQUEST_CANCEL,
}

# 202309 REPLACEMENT is deliberately absent: it is rejected as `unsupported_type`.
V202309_RETURN_TYPES: dict[str, ReverseType] = {
    "REFUND": ReverseType.REFUND_ONLY,
    "RETURN_AND_REFUND": ReverseType.RETURN_AND_REFUND,
}

# The seller's status tabs, in the order the dashboard shows them (after "All").
STATUS_TABS: tuple[tuple[ReturnStatus, str], ...] = (
    (ReturnStatus.AFTERSALE_APPLYING, "Aftersale applying"),
    (ReturnStatus.AFTERSALE_REJECT_APPLICATION, "Aftersale reject application"),
    (ReturnStatus.AFTERSALE_RETURNING, "Aftersale returning"),
    (ReturnStatus.AFTERSALE_BUYER_SHIPPED, "Aftersale buyer shipped"),
    (ReturnStatus.AFTERSALE_SELLER_REJECT_RECEIVE, "Aftersale reject receive"),
    (ReturnStatus.AFTERSALE_SUCCESS, "Aftersale success"),
    (ReturnStatus.COMPLETE, "Complete"),
    (ReturnStatus.CLOSED, "Closed"),
    (ReturnStatus.CANCEL_SUCCESS, "Cancelled"),
)
