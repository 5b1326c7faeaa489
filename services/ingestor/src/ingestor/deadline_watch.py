"""TikTok's deadlines, watched: per shop, how many returns are past their deadline and how many
are within its last 24 h (a Prometheus gauge), and, when configured, a signed webhook to the
seller's own systems, once per return and deadline, when the return enters its last 24 h.

Every `DEADLINE_SCAN_SECONDS` the returns waiting on the seller are read by `action_due`
(an equality FerretDB pushes down; an index on MongoDB), soonest deadline first. An alert is
recorded in `deadline_alerts` (`_id` = return key + deadline) before it is sent, claimed for a
while by the process that sends it, and marked sent on a 2xx: sent once across replicas and
restarts, retried at the next scan until the deadline passes.

The webhook body is JSON; headers `X-Returns-Timestamp` (unix s) and `X-Returns-Signature` =
lowercase hex HMAC-SHA256(key = DEADLINE_WEBHOOK_SECRET, message = timestamp + "." + body).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import CollectorRegistry, Gauge
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from contracts.deadlines import (
    ACTION_DEADLINE,
    ACTION_DUE,
    DEADLINE_ALERTS_COLLECTION,
    LAST_HOURS_S,
)
from ingestor.settings import Settings
from runtime.mongo import mongo_client
from runtime.read_model import active_returns_collection

log = structlog.get_logger("ingestor.deadlines")

Document = dict[str, Any]
CLAIM_S = 60
WINDOWS = ("past", "within_24h")
EVENT_TYPE = "return.deadline_within_24h"


def windows(docs: Iterable[Mapping[str, Any]], now: int) -> dict[str, dict[str, int]]:
    """Per shop: returns past their deadline, and returns within its last 24 h. Pure."""
    counts: dict[str, dict[str, int]] = {}
    for doc in docs:
        deadline = doc.get(ACTION_DEADLINE)
        if not isinstance(deadline, int):
            continue
        shop = counts.setdefault(str(doc["shop_id"]), dict.fromkeys(WINDOWS, 0))
        if deadline <= now:
            shop["past"] += 1
        elif deadline <= now + LAST_HOURS_S:
            shop["within_24h"] += 1
    return counts


def alert(doc: Mapping[str, Any], now: int) -> Document | None:
    """The alert of a return in its last 24 h (None otherwise), `_id` = return key + deadline."""
    deadline = doc.get(ACTION_DEADLINE)
    if not isinstance(deadline, int) or not now < deadline <= now + LAST_HOURS_S:
        return None
    actions = (doc.get("details") or {}).get("next_actions") or []
    action = next((a.get("action") for a in actions if a.get("deadline") == deadline), None)
    return {
        "_id": f"{doc['_id']}:{deadline}",
        "type": EVENT_TYPE,
        "shop_id": doc["shop_id"],
        "return_id": doc["return_id"],
        "order_id": doc.get("order_id"),
        "return_status": doc.get("status"),
        "action": action,
        "deadline": deadline,
    }


def signed(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers that let the seller's systems check a webhook came from us."""
    message = str(timestamp).encode() + b"." + body
    return {
        "content-type": "application/json",
        "X-Returns-Timestamp": str(timestamp),
        "X-Returns-Signature": hmac.new(secret.encode(), message, hashlib.sha256).hexdigest(),
    }


@dataclass
class DeadlineWatch:
    settings: Settings
    registry: CollectorRegistry
    mongo: AsyncMongoClient[Document] | None = None
    clock: Callable[[], float] = time.time
    transport: httpx.AsyncBaseTransport | None = None
    gauge: Gauge = field(init=False)
    _http: httpx.AsyncClient = field(init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _shops: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.mongo is None:
            self.mongo = mongo_client(self.settings.mongodb_url,
                                      self.settings.mongodb_timeout_ms)
        self.gauge = Gauge("ingestor_returns_deadline",
                           "Returns waiting on the seller, by shop: past their deadline, or "
                           "within its last 24 h", ["shop_id", "window"], registry=self.registry)
        self._http = httpx.AsyncClient(timeout=10.0, transport=self.transport)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def close(self) -> None:
        await self._http.aclose()
        if self.mongo is not None:
            await self.mongo.close()

    async def _forever(self) -> None:
        while True:
            try:
                await self.scan()
            except (PyMongoError, httpx.HTTPError) as exc:  # next scan tries again
                log.warning("deadline_scan_failed", error=repr(exc))
            await asyncio.sleep(self.settings.deadline_scan_seconds)

    async def scan(self) -> int:
        """One pass: the gauges, then the alerts due; returns how many alerts were sent."""
        assert self.mongo is not None
        db = self.mongo[self.settings.mongodb_database]
        returns = db[await active_returns_collection(db)]
        due = await returns.find({ACTION_DUE: True}).sort(ACTION_DEADLINE, 1).to_list()
        now = int(self.clock())
        counts = windows(due, now)
        for shop in self._shops | set(counts):
            for window in WINDOWS:
                self.gauge.labels(shop_id=shop, window=window).set(
                    counts.get(shop, {}).get(window, 0))
        self._shops |= set(counts)
        if not self.settings.deadline_webhook_url:
            return 0
        sent = 0
        for doc in due:
            found = alert(doc, now)
            if found is not None and await self._announce(found, now):
                sent += 1
        return sent

    async def _announce(self, found: Document, now: int) -> bool:
        assert self.mongo is not None
        alerts = self.mongo[self.settings.mongodb_database][DEADLINE_ALERTS_COLLECTION]
        with contextlib.suppress(DuplicateKeyError):
            await alerts.insert_one({**found, "status": "pending", "claimed_until": None,
                                     "created_at": datetime.now(UTC)})
        claimed = await alerts.find_one_and_update(
            {"_id": found["_id"], "status": "pending",
             "$or": [{"claimed_until": None}, {"claimed_until": {"$lt": datetime.now(UTC)}}]},
            {"$set": {"claimed_until": datetime.now(UTC) + timedelta(seconds=CLAIM_S)}},
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:  # sent already, or another process is sending it
            return False
        body = json.dumps({k: v for k, v in found.items() if k != "_id"} | {
            "alert_id": found["_id"], "seconds_left": found["deadline"] - now},
            sort_keys=True).encode()
        secret = self.settings.deadline_webhook_secret
        headers = signed(secret.get_secret_value() if secret else "", body, now)
        try:
            response = await self._http.post(self.settings.deadline_webhook_url, content=body,
                                              headers=headers)
            ok = response.is_success
        except httpx.HTTPError as exc:
            log.warning("deadline_webhook_failed", alert_id=found["_id"], error=repr(exc))
            ok = False
        update: Document = ({"status": "sent", "sent_at": datetime.now(UTC)} if ok
                            else {"claimed_until": None})
        await alerts.update_one({"_id": found["_id"]}, {"$set": update})
        if ok:
            log.info("deadline_webhook_sent", alert_id=found["_id"], shop_id=found["shop_id"])
        return ok
