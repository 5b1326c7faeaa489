"""What the benchmark sends: one shop's returns as events, and signed TikTok webhooks.

Each return gets five events, one of ten realistic lifecycles (see LIFECYCLES), so the read
model ends with returns in every status tab, most of them complete. Events go to the topic in
the order of their update_time, as a shop's history would have arrived: returns opened one
after another over 30 days, each moving on a day per step.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from bench.state_machine_throughput import produce
from contracts.messages import EventSource, Money, ReturnDetails, ReturnEvent, ReturnItem
from contracts.statuses import V202309_STATUS_NAMES, ReturnStatus, ReverseType

S, T = ReturnStatus, ReverseType
DAY = 24 * 3600
EVENTS_PER_RETURN = 5
PRODUCE_CHUNK = 20_000  # events built and produced at a time, to bound memory at 100,000 returns


@dataclass(frozen=True)
class Step:
    status: ReturnStatus
    detail: str | None = None  # a details-only update: same status, later time, new details


@dataclass(frozen=True)
class Lifecycle:
    weight: int  # out of the weights' sum
    reverse_type: ReverseType
    steps: tuple[Step, ...]

    @property
    def final(self) -> ReturnStatus:
        return self.steps[-1].status


def _steps(*items: ReturnStatus | tuple[ReturnStatus, str]) -> tuple[Step, ...]:
    return tuple(Step(*i) if isinstance(i, tuple) else Step(i) for i in items)


A, REJ, RET, SHIP = (S.AFTERSALE_APPLYING, S.AFTERSALE_REJECT_APPLICATION,
                     S.AFTERSALE_RETURNING, S.AFTERSALE_BUYER_SHIPPED)
SRR, OK = S.AFTERSALE_SELLER_REJECT_RECEIVE, S.AFTERSALE_SUCCESS
LIFECYCLES: tuple[Lifecycle, ...] = (
    Lifecycle(5, T.RETURN_AND_REFUND, _steps(A, RET, SHIP, OK, S.COMPLETE)),
    Lifecycle(4, T.REFUND_ONLY, _steps(A, REJ, A, OK, S.COMPLETE)),  # appealed, then refunded
    Lifecycle(1, T.RETURN_AND_REFUND, _steps(A, RET, SHIP, SRR, S.CLOSED)),
    Lifecycle(1, T.REFUND_ONLY, _steps(A, (A, "reason_text"), REJ, A, S.CANCEL_SUCCESS)),
    Lifecycle(1, T.RETURN_AND_REFUND, _steps(A, RET, SHIP, SRR, OK)),  # arbitration
    Lifecycle(2, T.REFUND_ONLY, _steps(A, REJ, A, REJ, A)),
    Lifecycle(2, T.REFUND_ONLY, _steps(A, (A, "reason_text"), REJ, A, REJ)),
    Lifecycle(1, T.RETURN_AND_REFUND, _steps(A, REJ, A, RET, (RET, "reason_text"))),
    Lifecycle(2, T.RETURN_AND_REFUND, _steps(A, REJ, A, RET, SHIP)),
    Lifecycle(1, T.RETURN_AND_REFUND, _steps(A, RET, SHIP, (SHIP, "tracking_number"), SRR)),
)
WHEEL = [lc for lc in LIFECYCLES for _ in range(lc.weight)]  # return i follows WHEEL[i % len]
assert all(len(lc.steps) == EVENTS_PER_RETURN for lc in LIFECYCLES)

# The status a webhook moves a return on to, from the status it ends its lifecycle in.
NEXT: dict[tuple[ReverseType, ReturnStatus], ReturnStatus] = {
    (T.REFUND_ONLY, A): OK,
    (T.RETURN_AND_REFUND, A): RET,
    (T.REFUND_ONLY, REJ): A,
    (T.RETURN_AND_REFUND, REJ): A,
    (T.RETURN_AND_REFUND, RET): SHIP,
    (T.RETURN_AND_REFUND, SHIP): OK,
    (T.RETURN_AND_REFUND, SRR): OK,
    (T.REFUND_ONLY, OK): S.COMPLETE,
    (T.RETURN_AND_REFUND, OK): S.COMPLETE,
}
V202309_NAME = {status: name for name, status in reversed(V202309_STATUS_NAMES.items())}
V202309_TYPE = {T.REFUND_ONLY: "REFUND", T.RETURN_AND_REFUND: "RETURN_AND_REFUND"}


def lifecycle_of(i: int) -> Lifecycle:
    return WHEEL[i % len(WHEEL)]


def return_id(i: int) -> str:
    return f"r{i:07d}"


def expected_tabs(returns: int) -> dict[str, int]:
    """How many returns end in each status (and "ALL"), as the counts route should say."""
    counts: dict[str, int] = {"ALL": returns}
    for i in range(returns):
        final = lifecycle_of(i).final.value
        counts[final] = counts.get(final, 0) + 1
    return counts


def _event(shop: str, i: int, step: int, update_time: int) -> ReturnEvent:
    lifecycle = lifecycle_of(i)
    current = lifecycle.steps[step]
    details = ReturnDetails()
    if step == 0:
        details = ReturnDetails(
            refund=Money(amount=Decimal("19.90") + i % 50, currency="USD"),
            reason="damaged" if i % 3 else "not_as_described",
            items=(ReturnItem(sku_id=f"sku{i % 97}", quantity=1 + i % 2),),
            request_time=update_time,
        )
    elif current.detail == "tracking_number":
        details = ReturnDetails(tracking_number=f"TRK{i:09d}")
    elif current.detail == "reason_text":
        details = ReturnDetails(reason_text=f"buyer added evidence {step}")
    return ReturnEvent(
        shop_id=shop, return_id=return_id(i), order_id=f"o{i:07d}", status=current.status,
        update_time=update_time, reverse_type=lifecycle.reverse_type, details=details,
        source=EventSource.SYNC_202309,
    )


def history_order(returns: int, now: int) -> list[tuple[int, int, int]]:
    """(update_time, return index, step) of every event, oldest first; all before `now`."""
    start, span = now - 40 * DAY, 30 * DAY
    return sorted(
        (start + i * span // returns + step * DAY, i, step)
        for i in range(returns)
        for step in range(EVENTS_PER_RETURN)
    )


async def produce_history(bootstrap: str, shop: str, returns: int) -> float:
    """Produce every event of the shop's `returns` returns; seconds spent producing."""
    order = history_order(returns, int(time.time()))
    seconds = 0.0
    for start in range(0, len(order), PRODUCE_CHUNK):
        events = [_event(shop, i, step, t) for t, i, step in order[start:start + PRODUCE_CHUNK]]
        seconds += await produce(bootstrap, events)
    return seconds


# ----------------------------------------------------------------------------------- webhooks


@dataclass(frozen=True)
class Change:
    """One webhook: the status a return moves to (an existing return's next, or a new one)."""

    return_id: str
    order_id: str
    status: ReturnStatus
    reverse_type: ReverseType
    existing: bool


def changes(returns: int, new_prefix: str = "w") -> Iterator[Change]:
    """Endless: alternately the next status of an existing open return (each at most once)
    and a new request (id `new_prefix` + a number); only new requests once every open return
    had its webhook."""
    open_returns = (i for i in range(returns) if (lifecycle_of(i).reverse_type,
                                                  lifecycle_of(i).final) in NEXT)
    n = 0
    while True:
        i = next(open_returns, None) if n % 2 == 0 else None
        if i is not None:
            lifecycle = lifecycle_of(i)
            yield Change(return_id(i), f"o{i:07d}", NEXT[(lifecycle.reverse_type,
                                                         lifecycle.final)],
                         lifecycle.reverse_type, existing=True)
        else:
            reverse_type = T.REFUND_ONLY if n % 3 else T.RETURN_AND_REFUND
            yield Change(f"{new_prefix}{n:07d}", f"o{new_prefix}{n:07d}", A, reverse_type,
                         existing=False)
        n += 1


def webhook_body(shop: str, change: Change, update_time: int, notification: int) -> bytes:
    """A 202309 return webhook (`type` 12) as TikTok pushes it."""
    return json.dumps({
        "type": 12, "tts_notification_id": str(7_300_000_000_000_000_000 + notification),
        "shop_id": shop, "timestamp": update_time,
        "data": {
            "order_id": change.order_id, "return_id": change.return_id, "return_role": "BUYER",
            "return_type": V202309_TYPE[change.reverse_type],
            "return_status": V202309_NAME[change.status],
            "create_time": update_time, "update_time": update_time,
        },
    }, separators=(",", ":")).encode()


def signature(app_key: str, app_secret: str, body: bytes) -> str:
    """TikTok's `Authorization` header: hex HMAC-SHA256(key = app secret, app key + body)."""
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()
