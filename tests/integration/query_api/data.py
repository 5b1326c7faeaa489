"""The seeded read model and the in-process query API that the query API test files share."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI

from contracts.messages import (
    EventSource,
    Money,
    RejectedEvent,
    RejectionReason,
    ReturnDetails,
    ReturnEvent,
    ReturnItem,
    return_key,
)
from contracts.read_model import (
    DAY_S,
    EventRecord,
    Outcome,
    ReturnState,
    bucket_start,
    days_text,
    page_fields,
)
from contracts.statuses import ReturnStatus, ReverseType
from contracts.transitions import LIFECYCLE_RANK
from query_api.settings import Settings

SHOP_A = "7494560109732840000"
SHOP_B = "7494560109732849999"
T0 = 1_732_600_000
STATUSES = list(ReturnStatus)
Doc = dict[str, Any]


def make_return(
    shop_id: str,
    n: int,
    *,
    status: ReturnStatus,
    reverse_type: ReverseType | None,
    update_time: int,
    order_id: str | None = None,
    anomaly: bool = False,
) -> Doc:
    """A read-model document exactly as the state machine writes it (plus bookkeeping)."""
    return_id = f"40353185040860{n:05d}"
    details = ReturnDetails(
        refund=Money(amount=Decimal("12.34"), currency="USD"),
        reason="damaged",
        items=(ReturnItem(sku_id="sku-1", product_name="Mug", quantity=1),),
        tracking_number=f"TRK{n}",
        request_time=T0 - 100,
    )
    state = ReturnState(
        shop_id=shop_id,
        return_id=return_id,
        order_id=order_id or f"5764614130387{n:05d}",
        status=status,
        reverse_type=reverse_type,
        update_time=update_time,
        details=details,
        anomaly=anomaly,
        first_seen_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
        last_seen_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
    )
    # Bookkeeping fields the state machine may add: the API must ignore them.
    return state.model_dump(mode="json") | page_fields(shop_id, status.value, update_time) | {
        "_id": return_key(shop_id, return_id),
        "version": 3,
        "applied": {"partition": 0, "offset": n},
    }


def history_document(doc: Doc) -> Doc:
    """The one event of a seeded return, as the state machine stores it in its history."""
    event = ReturnEvent(
        shop_id=doc["shop_id"], return_id=doc["return_id"], order_id=doc["order_id"],
        status=doc["status"], update_time=doc["update_time"], reverse_type=doc["reverse_type"],
        details=ReturnDetails.model_validate(doc["details"]), source=EventSource.WEBHOOK_202309,
        notification_id=f"n-{doc['return_id']}",
        observed_at=datetime(2024, 11, 27, 4, 0, tzinfo=UTC),
    )
    record = EventRecord(
        return_key=doc["_id"], shop_id=event.shop_id, update_time=event.update_time,
        rank=LIFECYCLE_RANK[event.status], event=event, deliveries=2,
        last_observed_at=event.observed_at, partition=0, offset=doc["applied"]["offset"],
        outcome=Outcome.APPLIED,
    )
    return record.model_dump(mode="json") | {"_id": event.event_id}


def counts_documents(docs: list[Doc]) -> list[Doc]:
    """Status counts as the state machine keeps them: per shop and partition (here the
    returns of even and odd number stand for two partitions)."""
    tallies: dict[tuple[str, int], Counter[str]] = {}
    days: dict[tuple[str, int], dict[str, Counter[str]]] = {}
    for doc in docs:
        pair = (doc["shop_id"], int(doc["applied"]["offset"]) % 2)
        tallies.setdefault(pair, Counter())[doc["status"]] += 1
        day = str(bucket_start(doc["update_time"], DAY_S))
        days.setdefault(pair, {}).setdefault(day, Counter())[doc["status"]] += 1
    return [{"_id": f"{shop}:{p}", "shop_id": shop, "partition": p, "offset": 10_000,
             "counts": dict(tally), "days": days_text(days[(shop, p)])}
            for (shop, p), tally in tallies.items()]


def seed_documents() -> list[Doc]:
    docs = []
    for n in range(30):  # shop A: every status, both main types, ties on update_time
        status = STATUSES[n % len(STATUSES)]
        reverse_type: ReverseType | None = (
            ReverseType.REFUND_ONLY if n % 2 else ReverseType.RETURN_AND_REFUND
        )
        if n == 29:
            reverse_type = None  # a return first met through a legacy webhook without a type
        docs.append(
            make_return(
                SHOP_A,
                n,
                status=status,
                reverse_type=reverse_type,
                update_time=T0 + (n // 4) * 60,  # groups of 4 returns share one update_time
                order_id="ORDER-SHARED" if n in (3, 17) else None,
                anomaly=n % 7 == 0,
            )
        )
    for n in range(100, 105):  # shop B
        docs.append(
            make_return(
                SHOP_B,
                n,
                status=ReturnStatus.AFTERSALE_APPLYING,
                reverse_type=ReverseType.REQUEST_CANCEL,
                update_time=T0 + 10_000 + n,
            )
        )
    return docs


DOCS = seed_documents()
SHOP_A_DOCS = [d for d in DOCS if d["shop_id"] == SHOP_A]
REASONS = list(RejectionReason)


def seed_rejections() -> list[Doc]:
    """Rejections as the state machine records them: `model_dump(mode="json") | {"_id": id}`."""
    docs = []
    for n in range(14):
        rejection = RejectedEvent(
            rejection_id=f"rej-{n:03d}",
            reason=REASONS[n % len(REASONS)],
            detail=f"rejection {n}",
            stage="state_machine" if n % 2 else "ingestor",
            shop_id=SHOP_A if n < 10 else SHOP_B,
            return_id=f"r-{n}",
            raw='{"type": 12}',
            # groups of 3 share one instant: ties are broken by _id
            rejected_at=datetime(2024, 11, 27, 4, n // 3, tzinfo=UTC),
        )
        docs.append(rejection.model_dump(mode="json") | {"_id": rejection.rejection_id})
    return docs


REJECTION_DOCS = seed_rejections()


def newest_first(docs: Iterable[Doc]) -> list[str]:
    ordered = sorted(docs, key=lambda d: (d["update_time"], d["_id"]), reverse=True)
    return [d["_id"] for d in ordered]


OPS_TOKEN, SHOP_A_TOKEN = "test-ops", "test-shop-a"


def make_settings(**values: Any) -> Settings:
    return Settings(query_api_tokens={OPS_TOKEN: ["*"], SHOP_A_TOKEN: [SHOP_A]}, **values)


@asynccontextmanager
async def serve(app: FastAPI, token: str = OPS_TOKEN) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an HTTP client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://query-api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


async def list_ids(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/api/v1/returns", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [item["id"] for item in body["items"]]
