"""What the simulated TikTok waits for from the seller, by when, what each decision does, and
its reject reasons: the simulator's own literal tables (TikTok's behaviour as DOMAIN.md
describes it), deliberately not taken from `contracts`, so the two check each other.

Deadlines: a return waiting on the seller gets `seller_next_action_response` with a deadline
some hours (6..72, fixed per return) after it entered its status, or after it was listed in
the simulator when that is later: generated returns reach back weeks, and TikTok would long
have decided those without the seller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from contracts.statuses import ReturnStatus, ReverseType

S, T = ReturnStatus, ReverseType
HOUR = 3600
MIN_WINDOW_S, MAX_WINDOW_S = 6 * HOUR, 72 * HOUR

# (reverse type, status) -> the action TikTok waits for.
SELLER_ACTIONS: Mapping[tuple[ReverseType, ReturnStatus], str] = {
    (T.REFUND_ONLY, S.AFTERSALE_APPLYING): "SELLER_RESPOND_REFUND",
    (T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING): "SELLER_RESPOND_RETURN",
    (T.RETURN_AND_REFUND, S.AFTERSALE_BUYER_SHIPPED): "SELLER_RESPOND_RECEIVE_PACKAGE",
}

# 202309 decision value -> (reverse type, status it applies to, status it leads to).
DECISIONS: Mapping[str, tuple[ReverseType, ReturnStatus, ReturnStatus]] = {
    "APPROVE_REFUND": (T.REFUND_ONLY, S.AFTERSALE_APPLYING, S.AFTERSALE_SUCCESS),
    "REJECT_REFUND": (T.REFUND_ONLY, S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION),
    "APPROVE_RETURN": (T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING, S.AFTERSALE_RETURNING),
    "REJECT_RETURN": (T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING,
                      S.AFTERSALE_REJECT_APPLICATION),
    "APPROVE_RECEIVED_PACKAGE": (T.RETURN_AND_REFUND, S.AFTERSALE_BUYER_SHIPPED,
                                 S.AFTERSALE_SUCCESS),
    "REJECT_RECEIVED_PACKAGE": (T.RETURN_AND_REFUND, S.AFTERSALE_BUYER_SHIPPED,
                                S.AFTERSALE_SELLER_REJECT_RECEIVE),
}

# Reject reasons per status a seller may reject in: (name, text per locale).
_APPLY = (
    ("seller_reject_apply_product_not_returned",
     {"en-US": "The buyer has not returned the product", "de-DE": "Kein Rückversand erfolgt"}),
    ("seller_reject_apply_agreed_with_buyer",
     {"en-US": "Agreed with the buyer to keep the order",
      "de-DE": "Mit dem Käufer anders vereinbart"}),
    ("seller_reject_apply_outside_return_period",
     {"en-US": "The return period has ended", "de-DE": "Die Rückgabefrist ist abgelaufen"}),
)
_RECEIVE = (
    ("seller_reject_receive_package_damaged",
     {"en-US": "The returned item is damaged", "de-DE": "Der Artikel ist beschädigt"}),
    ("seller_reject_receive_wrong_item",
     {"en-US": "A different item was returned", "de-DE": "Ein anderer Artikel kam zurück"}),
    ("seller_reject_receive_empty_package",
     {"en-US": "The package was empty", "de-DE": "Das Paket war leer"}),
)
REJECT_REASONS: Mapping[tuple[ReverseType, ReturnStatus], tuple[tuple[str, Mapping[str, str]],
                                                                  ...]] = {
    (T.REFUND_ONLY, S.AFTERSALE_APPLYING): _APPLY[1:],  # no parcel to return
    (T.RETURN_AND_REFUND, S.AFTERSALE_APPLYING): _APPLY,
    (T.RETURN_AND_REFUND, S.AFTERSALE_BUYER_SHIPPED): _RECEIVE,
}
DEFAULT_LOCALE = "en-US"


def response_window(return_id: str) -> int:
    """How long the seller has for this return (fixed per return, 6..72 h)."""
    digest = int(hashlib.sha256(return_id.encode()).hexdigest()[:8], 16)
    return MIN_WINDOW_S + digest % (MAX_WINDOW_S - MIN_WINDOW_S)


def seller_next_actions(return_id: str, reverse_type: ReverseType, status: ReturnStatus,
                        entered_at: int, listed_at: int) -> list[dict[str, Any]]:
    """`seller_next_action_response` of a 202309 record ([] when TikTok waits for nothing)."""
    action = SELLER_ACTIONS.get((reverse_type, status))
    if action is None:
        return []
    return [{"action": action,
             "deadline": max(entered_at, listed_at) + response_window(return_id)}]


def reject_reasons(reverse_type: ReverseType, status: ReturnStatus, locale: str
                   ) -> list[dict[str, str]]:
    """The reject reasons of such a return, in `locale` (en-US when unknown)."""
    return [{"name": name, "text": texts.get(locale, texts[DEFAULT_LOCALE])}
            for name, texts in REJECT_REASONS.get((reverse_type, status), ())]
