"""The simulator's in-memory returns, how they are generated and rendered in TikTok's formats."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from contracts.statuses import ReturnStatus, ReverseType
from contracts.transitions import TRANSITIONS, allowed_for_type
from tiktok_sim.codes import (
    LEGACY_CODE_OF_STATUS,
    LEGACY_EVENT_TYPE_OF,
    LEGACY_TYPE_CODE_OF,
    V202309_NAME_OF_STATUS,
    V202309_TYPE_NAME_OF,
)
from tiktok_sim.protocol import (
    WEBHOOK_TYPE_202309_RETURN,
    WEBHOOK_TYPE_LEGACY_RETURN,
    ApiVersion,
    renderable_statuses,
    supported_types,
)
from tiktok_sim.seller_actions import seller_next_actions

S = ReturnStatus

# Who makes each move (TikTok's roles); a simulator choice, used for webhooks.
ACTOR_OF_STATUS: dict[ReturnStatus, str] = {
    S.AFTERSALE_APPLYING: "BUYER",
    S.AFTERSALE_REJECT_APPLICATION: "SELLER",
    S.AFTERSALE_RETURNING: "SELLER",
    S.AFTERSALE_BUYER_SHIPPED: "BUYER",
    S.AFTERSALE_SELLER_REJECT_RECEIVE: "SELLER",
    S.AFTERSALE_SUCCESS: "SELLER",
    S.CANCEL_SUCCESS: "BUYER",
    S.CLOSED: "OPERATOR",
    S.COMPLETE: "SYSTEM",
}
LEGACY_REVERSE_USER: dict[str, int] = {"BUYER": 1, "SELLER": 2, "OPERATOR": 3, "SYSTEM": 4}

REASONS: tuple[tuple[str, str], ...] = (
    ("ecom_order_delivered_refund_and_return_reason_damaged", "Item arrived damaged"),
    ("ecom_order_delivered_refund_and_return_reason_wrong_item", "Received the wrong item"),
    ("ecom_order_delivered_refund_and_return_reason_not_as_described", "Not as described"),
    ("ecom_order_delivered_refund_reason_missing_parts", "Parts or accessories missing"),
    ("ecom_order_delivered_refund_and_return_reason_changed_mind", "No longer needed"),
)
CURRENCIES: tuple[str, ...] = ("USD", "GBP", "MYR")
PRODUCTS: tuple[tuple[str, str], ...] = (
    ("Wireless earbuds", "Black"),
    ("Phone case", "Clear / 6.1in"),
    ("Running shoes", "EU 42"),
    ("Face serum 30ml", "Default"),
    ("Desk lamp", "White"),
)


@dataclass(frozen=True)
class SimItem:
    sku_id: str
    seller_sku: str
    product_name: str
    sku_name: str
    quantity: int
    unit_price: Decimal
    image_url: str


@dataclass(frozen=True)
class Step:
    status: ReturnStatus
    update_time: int
    actor: str


@dataclass
class SimReturn:
    shop_id: str
    return_id: str
    order_id: str
    api_version: ApiVersion
    reverse_type: ReverseType
    currency: str
    items: tuple[SimItem, ...]
    reason: str
    reason_text: str
    create_time: int
    history: list[Step]
    seq: int = 0  # insertion order: ties on update_time page in a stable order
    tracking_number: str | None = None
    listed_at: int = 0  # when the simulator first held it (deadlines start no earlier)

    @property
    def status(self) -> ReturnStatus:
        return self.history[-1].status

    @property
    def update_time(self) -> int:
        return self.history[-1].update_time

    @property
    def refund_total(self) -> Decimal:
        return sum((i.unit_price * i.quantity for i in self.items), Decimal("0.00"))

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.update_time, self.seq)


def valid_next(
    status: ReturnStatus, reverse_type: ReverseType, api_version: ApiVersion
) -> list[ReturnStatus]:
    """Statuses a return may move to next: the contracts table, restricted to its reverse type
    and to what its API generation can express. Sorted, so choices are reproducible."""
    renderable = renderable_statuses(api_version)
    return sorted(
        s for s in TRANSITIONS[status] if allowed_for_type(s, reverse_type) and s in renderable
    )


class SimStore:
    """Returns by (shop, id); each shop is served by one API generation."""

    def __init__(self) -> None:
        self._returns: dict[tuple[str, str], SimReturn] = {}
        self._by_shop: dict[str, list[SimReturn]] = {}
        self._shops: dict[str, ApiVersion] = {}
        self._seq = 0

    def register_shop(self, shop_id: str, api_version: ApiVersion) -> None:
        known = self._shops.get(shop_id)
        if known is not None and known != api_version:
            raise ValueError(f"shop {shop_id} already uses the {known} API")
        self._shops[shop_id] = api_version
        self._by_shop.setdefault(shop_id, [])

    def shop_version(self, shop_id: str) -> ApiVersion | None:
        return self._shops.get(shop_id)

    def shops(self) -> dict[str, ApiVersion]:
        return dict(self._shops)

    def add(self, ret: SimReturn) -> None:
        key = (ret.shop_id, ret.return_id)
        if key in self._returns:
            raise ValueError(f"return {key} exists")
        self.register_shop(ret.shop_id, ret.api_version)
        self._seq += 1
        ret.seq = self._seq
        self._returns[key] = ret
        self._by_shop[ret.shop_id].append(ret)

    def get(self, shop_id: str, return_id: str) -> SimReturn | None:
        return self._returns.get((shop_id, return_id))

    def returns(self, shop_id: str | None = None) -> list[SimReturn]:
        """In insertion order."""
        if shop_id is None:
            return list(self._returns.values())
        return list(self._by_shop.get(shop_id, ()))

    def ordered(self, shop_id: str) -> list[SimReturn]:
        """A shop's returns by (update_time, insertion order): the order searches page in."""
        return sorted(self._by_shop.get(shop_id, ()), key=lambda r: r.sort_key)

    def status_counts(self, shop_id: str) -> dict[str, int]:
        return dict(Counter(r.status.value for r in self._by_shop.get(shop_id, ())))

    def __len__(self) -> int:
        return len(self._returns)


# ------------------------------------------------------------------------------------ generation


def _new_id(rng: random.Random, taken: Iterable[str], low: int) -> str:
    taken_set = set(taken)
    while True:
        candidate = str(rng.randrange(low, low * 10))
        if candidate not in taken_set:
            return candidate


def generate_returns(
    store: SimStore,
    rng: random.Random,
    shop_id: str,
    count: int,
    api_version: ApiVersion,
    *,
    now: int,
    max_steps: int = 4,
) -> list[SimReturn]:
    """Add `count` returns to a shop, each at a random point of a valid lifecycle in the past."""
    store.register_shop(shop_id, api_version)
    taken = {r.return_id for r in store.returns(shop_id)}
    types = sorted(supported_types(api_version))
    created: list[SimReturn] = []
    for _ in range(count):
        return_id = _new_id(rng, taken, 10**18)
        taken.add(return_id)
        reverse_type = rng.choice(types)
        create_time = now - rng.randint(3600, 30 * 86400)
        steps = [Step(S.AFTERSALE_APPLYING, create_time, ACTOR_OF_STATUS[S.AFTERSALE_APPLYING])]
        tracking: str | None = None
        for _ in range(rng.randint(0, max_steps)):
            options = valid_next(steps[-1].status, reverse_type, api_version)
            if not options:
                break
            nxt = rng.choice(options)
            when = min(now, steps[-1].update_time + rng.randint(60, 2 * 86400))
            when = max(when, steps[-1].update_time + 1)
            steps.append(Step(nxt, when, ACTOR_OF_STATUS[nxt]))
            if nxt == S.AFTERSALE_BUYER_SHIPPED:
                tracking = new_tracking_number(rng)
        reason, reason_text = rng.choice(REASONS)
        items = tuple(_new_item(rng) for _ in range(rng.randint(1, 3)))
        ret = SimReturn(
            shop_id=shop_id,
            return_id=return_id,
            order_id=str(rng.randrange(10**17, 10**18)),
            api_version=api_version,
            reverse_type=reverse_type,
            currency=rng.choice(CURRENCIES),
            items=items,
            reason=reason,
            reason_text=reason_text,
            create_time=create_time,
            history=steps,
            tracking_number=tracking,
            listed_at=now,
        )
        store.add(ret)
        created.append(ret)
    return created


def new_tracking_number(rng: random.Random) -> str:
    return f"TT{rng.randrange(10**11, 10**12)}"


def _new_item(rng: random.Random) -> SimItem:
    name, variant = rng.choice(PRODUCTS)
    sku = str(rng.randrange(10**17, 10**18))
    return SimItem(
        sku_id=sku,
        seller_sku=f"SKU-{sku[-6:]}",
        product_name=name,
        sku_name=variant,
        quantity=rng.randint(1, 3),
        unit_price=Decimal(rng.randint(199, 9999)) / 100,
        image_url=f"https://p16-oec-va.ibyteimg.com/sim/{sku}.jpeg",
    )


# ------------------------------------------------------------------------------------ rendering


def legacy_record(ret: SimReturn) -> dict[str, Any]:
    """A `reverse_list[]` record of the legacy search."""
    return {
        "reverse_order_id": ret.return_id,
        "order_id": ret.order_id,
        "refund_total": f"{ret.refund_total:.2f}",
        "currency": ret.currency,
        "reverse_type": LEGACY_TYPE_CODE_OF[ret.reverse_type],
        "return_reason": ret.reason_text,
        "return_item_list": [
            {
                "sku_id": i.sku_id,
                "seller_sku": i.seller_sku,
                "return_product_name": i.product_name,
                "sku_name": i.sku_name,
                "return_quantity": i.quantity,
                "product_images": i.image_url,
            }
            for i in ret.items
        ],
        "reverse_status_value": LEGACY_CODE_OF_STATUS[ret.status],
        "reverse_request_time": ret.create_time,
        "reverse_update_time": ret.update_time,
        "return_tracking_id": ret.tracking_number or "",
        "reverse_record_list": [
            {
                "description": f"{step.actor.lower()}: {step.status.value.lower()}",
                "update_time": step.update_time,
                "reason_text": ret.reason_text if n == 0 else "",
            }
            for n, step in enumerate(ret.history)
        ],
    }


def _amount(currency: str, total: Decimal) -> dict[str, str]:
    return {
        "currency": currency,
        "refund_total": f"{total:.2f}",
        "refund_subtotal": f"{total:.2f}",
        "refund_shipping_fee": "0.00",
        "refund_tax": "0.00",
    }


def v202309_record(ret: SimReturn) -> dict[str, Any]:
    """A `return_orders[]` record of the 202309 search (one line item per unit, as TikTok)."""
    lines: list[dict[str, Any]] = []
    for item in ret.items:
        for _ in range(item.quantity):
            lines.append(
                {
                    "return_line_item_id": f"{ret.return_id}{len(lines):03d}",
                    "order_line_item_id": f"{ret.order_id}{len(lines):03d}",
                    "sku_id": item.sku_id,
                    "seller_sku": item.seller_sku,
                    "product_name": item.product_name,
                    "sku_name": item.sku_name,
                    "product_image": {"url": item.image_url, "height": 200, "width": 200},
                    "refund_amount": _amount(ret.currency, item.unit_price),
                }
            )
    record: dict[str, Any] = {
        "return_id": ret.return_id,
        "order_id": ret.order_id,
        "return_type": V202309_TYPE_NAME_OF[ret.reverse_type],
        "return_status": V202309_NAME_OF_STATUS[ret.status],
        "role": ret.history[-1].actor,
        "create_time": ret.create_time,
        "update_time": ret.update_time,
        "return_reason": ret.reason,
        "return_reason_text": ret.reason_text,
        "refund_amount": _amount(ret.currency, ret.refund_total),
        "return_line_items": lines,
    }
    if ret.tracking_number:
        record["return_tracking_number"] = ret.tracking_number
    actions = seller_next_actions(ret.return_id, ret.reverse_type, ret.status,
                                  ret.update_time, ret.listed_at)
    if actions:
        record["seller_next_action_response"] = actions
    return record


def legacy_webhook(ret: SimReturn, step: Step, timestamp: int) -> dict[str, Any]:
    return {
        "type": WEBHOOK_TYPE_LEGACY_RETURN,
        "shop_id": ret.shop_id,
        "timestamp": timestamp,
        "data": {
            "order_id": ret.order_id,
            "reverse_order_id": ret.return_id,
            "reverse_order_status": LEGACY_CODE_OF_STATUS[step.status],
            "reverse_event_type": LEGACY_EVENT_TYPE_OF[ret.reverse_type],
            "reverse_user": LEGACY_REVERSE_USER[step.actor],
            "update_time": step.update_time,
        },
    }


def v202309_webhook(
    ret: SimReturn, step: Step, timestamp: int, notification_id: str
) -> dict[str, Any]:
    return {
        "type": WEBHOOK_TYPE_202309_RETURN,
        "tts_notification_id": notification_id,
        "shop_id": ret.shop_id,
        "timestamp": timestamp,
        "data": {
            "order_id": ret.order_id,
            "return_id": ret.return_id,
            "return_role": step.actor,
            "return_type": V202309_TYPE_NAME_OF[ret.reverse_type],
            "return_status": V202309_NAME_OF_STATUS[step.status],
            "create_time": ret.create_time,
            "update_time": step.update_time,
        },
    }


@dataclass
class SimStats:
    """Counters shown by `GET /_sim/stats`."""

    requests: Counter[str] = field(default_factory=Counter)  # by endpoint
    refusals: Counter[str] = field(default_factory=Counter)  # by code / http status
    records_served: int = 0
    transitions: int = 0
    updated_while_paging: int = 0
    webhooks: Counter[str] = field(default_factory=Counter)  # sent, failed, duplicate, ...

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "refusals": dict(self.refusals),
            "refusals_total": sum(self.refusals.values()),
            "records_served": self.records_served,
            "transitions": self.transitions,
            "updated_while_paging": self.updated_while_paging,
            "webhooks": dict(self.webhooks),
        }
