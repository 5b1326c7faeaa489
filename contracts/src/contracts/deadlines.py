"""What TikTok waits for from the seller, and by when (DOMAIN.md: 202309
`seller_next_action_response`), and how a stored return exposes it to queries. Pure.

A return's `details.next_actions` is TikTok's list as last reported: `None` when no event said
(a webhook, the legacy API), `()` when TikTok listed none, which clears an earlier deadline
(unlike other details, where a missing value keeps the old one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.limits import EARLIEST_TIME, Name

LATEST_DEADLINE = 4_102_444_800  # 2100-01-01: a deadline lies ahead, but not beyond reason
LAST_HOURS_S = 24 * 3600  # "within 24 h": the red mark, the metric and the outbound webhook
DEADLINE_ALERTS_COLLECTION = "deadline_alerts"  # one document per deadline announced

Deadline = Annotated[
    int, Field(ge=EARLIEST_TIME, le=LATEST_DEADLINE, description="unix seconds")
]


class SellerAction(BaseModel):
    """One entry of `seller_next_action_response`: what TikTok waits for, and until when."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Name = Field(description="e.g. SELLER_RESPOND_REFUND")
    deadline: Deadline


def soonest(actions: Sequence[SellerAction] | None) -> SellerAction | None:
    """The action whose deadline comes first, if any."""
    return min(actions, key=lambda a: (a.deadline, a.action)) if actions else None


# Top-level fields of a stored return that has a deadline (absent otherwise): `action_due` is
# an equality FerretDB pushes down (and devinfra indexes), `action_deadline` the sort key.
ACTION_DUE = "action_due"
ACTION_DEADLINE = "action_deadline"


def deadline_fields(actions: Sequence[SellerAction] | None) -> dict[str, Any]:
    """What a stored return carries at top level for deadline queries."""
    first = soonest(actions)
    return {} if first is None else {ACTION_DUE: True, ACTION_DEADLINE: first.deadline}


# Returns waiting on the seller, soonest deadline first: one shop's, and every shop's.
DEADLINE_INDEXES: tuple[tuple[list[tuple[str, int]], str], ...] = (
    ([("shop_id", 1), (ACTION_DUE, 1), (ACTION_DEADLINE, 1), ("_id", 1)], "shop_action_due"),
    ([(ACTION_DUE, 1), (ACTION_DEADLINE, 1), ("_id", 1)], "action_due"),
)
